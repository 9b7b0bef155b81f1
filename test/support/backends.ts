// Access to the real backends that test/global-setup.ts started for this run.
import { KubeConfig } from '@kubernetes/client-node';
import { inject } from 'vitest';
import type { ProvidedBackends } from '../global-setup.js';

export type { ProvidedBackends } from '../global-setup.js';

export function getBackends(): ProvidedBackends {
  return inject('backends');
}

/** A client-node config for the test kube-apiserver, as a system:masters user. */
export function kubeConfigFor(b: ProvidedBackends): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'testenv', server: b.kube.server, caData: b.kube.caData, skipTLSVerify: false }],
    users: [{ name: 'admin', token: b.kube.token }],
    contexts: [{ name: 'testenv', cluster: 'testenv', user: 'admin' }],
    currentContext: 'testenv',
  });
  return kc;
}
