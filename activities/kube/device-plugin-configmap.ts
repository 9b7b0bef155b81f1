// Optionally mirrors a node's device-plugin config into a ConfigMap: the
// upstream plugin DaemonSet mounts one, with one key per node and
// `--config-file=/etc/pcidp/$(NODE_NAME)`.
import { ApiException, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { toKubeFailure } from './errors.js';
import { serializeDevicePluginConfig, type DevicePluginConfig } from '../../common/device-plugin.js';

export interface ConfigMapRef {
  namespace: string;
  name: string;
}

export function createDevicePluginConfigMapActivities({ kc }: { kc: KubeConfig }) {
  const core = kc.makeApiClient(CoreV1Api);
  return {
    /** Sets key `<nodeName>` to the config; writes only when it differs; creates the ConfigMap when missing. */
    async writeDevicePluginConfigMap(input: ConfigMapRef & { nodeName: string; config: DevicePluginConfig }): Promise<{ changed: boolean }> {
      const data = serializeDevicePluginConfig(input.config);
      try {
        const cm = await core.readNamespacedConfigMap({ namespace: input.namespace, name: input.name });
        if (cm.data?.[input.nodeName] === data) return { changed: false };
        cm.data = { ...cm.data, [input.nodeName]: data };
        // replace carries the resourceVersion: a concurrent writer makes this fail with 409 and retry.
        await core.replaceNamespacedConfigMap({ namespace: input.namespace, name: input.name, body: cm });
        return { changed: true };
      } catch (err) {
        if (err instanceof ApiException && err.code === 404) {
          await core.createNamespacedConfigMap({ namespace: input.namespace, body: { metadata: { name: input.name, namespace: input.namespace }, data: { [input.nodeName]: data } } });
          return { changed: true };
        }
        throw toKubeFailure(err, `ConfigMap ${input.namespace}/${input.name}`);
      }
    },
  };
}

export type DevicePluginConfigMapActivities = ReturnType<typeof createDevicePluginConfigMapActivities>;
