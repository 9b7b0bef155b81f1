// The device plugin config builder: merging, the placeholder, name parsing and
// byte-stable output.
import { describe, expect, it } from 'vitest';
import {
  buildDevicePluginConfig,
  devicePluginConfigProblems,
  devicePluginEntryProblem,
  findDevicePluginConflicts,
  InvalidDevicePluginEntryError,
  parseDevicePluginConfig,
  parseResourceName,
  PLACEHOLDER_RESOURCE,
  resourcesOf,
  serializeDevicePluginConfig,
  type DevicePluginEntry,
} from '../common/device-plugin.js';

const entry = (resourceName: string, pciAddress: string, driver = 'ena'): DevicePluginEntry => ({ resourceName, driver, pciAddress });

describe('parseResourceName', () => {
  it.each([
    ['intel.com/sriov_kernel_1', { prefix: 'intel.com', name: 'sriov_kernel_1' }],
    ['sriov_kernel', { prefix: 'intel.com', name: 'sriov_kernel' }],
    ['amazon.com/ENA_dpdk', { prefix: 'amazon.com', name: 'ENA_dpdk' }],
    ['a-b.example/x', { prefix: 'a-b.example', name: 'x' }],
    [`intel.com/${'n'.repeat(63)}`, { prefix: 'intel.com', name: 'n'.repeat(63) }],
  ])('%s', (s, want) => {
    expect(parseResourceName(s)).toEqual(want);
  });

  it.each([
    ['intel.com/sriov-kernel', /must be 1-63 letters, digits or "_"/],
    ['intel.com/', /must be 1-63 letters/],
    ['', /must be 1-63 letters/],
    [`intel.com/${'n'.repeat(64)}`, /must be 1-63 letters/],
    ['Intel.com/sriov', /not a lowercase DNS subdomain/],
    ['/sriov', /not a lowercase DNS subdomain/],
    ['-intel.com/sriov', /not a lowercase DNS subdomain/],
    ['intel..com/sriov', /not a lowercase DNS subdomain/],
    [`${'a'.repeat(254)}/sriov`, /not a lowercase DNS subdomain/],
    ['intel.com/a/b', /more than one "\/"/],
  ])('rejects %s', (s, message) => {
    expect(() => parseResourceName(s)).toThrow(InvalidDevicePluginEntryError);
    expect(() => parseResourceName(s)).toThrow(message);
  });
});

describe('buildDevicePluginConfig', () => {
  it('merges two NodeENIs with the same resource name (the original kept one address, defect 39)', () => {
    const cfg = buildDevicePluginConfig([entry('intel.com/sriov_a', '0000:00:08.0'), entry('intel.com/sriov_a', '0000:00:07.0')]);
    expect(cfg).toEqual({
      resourceList: [{ resourcePrefix: 'intel.com', resourceName: 'sriov_a', selectors: [{ drivers: ['ena'], pciAddresses: ['0000:00:07.0', '0000:00:08.0'] }] }],
    });
    expect(resourcesOf(cfg)).toEqual({ 'intel.com/sriov_a': 2 });
  });

  it('reproduces the original example output for samples 02 (one resource per NodeENI)', () => {
    const cfg = buildDevicePluginConfig([entry('intel.com/sriov_kernel_2', '0000:00:08.0'), entry('intel.com/sriov_kernel_1', '0000:00:07.0')]);
    expect(cfg.resourceList).toEqual([
      { resourcePrefix: 'intel.com', resourceName: 'sriov_kernel_1', selectors: [{ drivers: ['ena'], pciAddresses: ['0000:00:07.0'] }] },
      { resourcePrefix: 'intel.com', resourceName: 'sriov_kernel_2', selectors: [{ drivers: ['ena'], pciAddresses: ['0000:00:08.0'] }] },
    ]);
  });

  it('groups selectors by driver, one selector per driver, sorted', () => {
    const cfg = buildDevicePluginConfig([
      entry('intel.com/mixed', '0000:00:09.0', 'vfio-pci'),
      entry('intel.com/mixed', '0000:00:07.0', 'ena'),
      entry('intel.com/mixed', '0000:00:06.0', 'vfio-pci'),
      entry('intel.com/mixed', '0000:00:0a.0', 'igb_uio'),
    ]);
    expect(cfg.resourceList[0]!.selectors).toEqual([
      { drivers: ['ena'], pciAddresses: ['0000:00:07.0'] },
      { drivers: ['igb_uio'], pciAddresses: ['0000:00:0a.0'] },
      { drivers: ['vfio-pci'], pciAddresses: ['0000:00:06.0', '0000:00:09.0'] },
    ]);
    expect(resourcesOf(cfg)).toEqual({ 'intel.com/mixed': 4 });
  });

  it('applies the default prefix, so "x" and "intel.com/x" are one resource', () => {
    const cfg = buildDevicePluginConfig([entry('sriov_x', '0000:00:07.0'), entry('intel.com/sriov_x', '0000:00:08.0'), entry('amazon.com/sriov_x', '0000:00:09.0')]);
    expect(cfg.resourceList.map((r) => [r.resourcePrefix, r.resourceName, r.selectors[0]!.pciAddresses])).toEqual([
      ['amazon.com', 'sriov_x', ['0000:00:09.0']],
      ['intel.com', 'sriov_x', ['0000:00:07.0', '0000:00:08.0']],
    ]);
  });

  it('removes duplicates and lower-cases PCI addresses as sysfs spells them', () => {
    const cfg = buildDevicePluginConfig([entry('intel.com/a', '0000:00:1F.0'), entry('intel.com/a', '0000:00:1f.0'), entry('intel.com/a', '0000:00:1f.0')]);
    expect(cfg.resourceList[0]!.selectors).toEqual([{ drivers: ['ena'], pciAddresses: ['0000:00:1f.0'] }]);
  });

  it('gives an address claimed twice to the first resource in sorted order, and reports the conflict', () => {
    const entries = [entry('intel.com/b', '0000:00:07.0'), entry('intel.com/a', '0000:00:07.0'), entry('intel.com/b', '0000:00:08.0')];
    const cfg = buildDevicePluginConfig(entries);
    expect(resourcesOf(cfg)).toEqual({ 'intel.com/a': 1, 'intel.com/b': 1 });
    expect(cfg.resourceList.find((r) => r.resourceName === 'b')!.selectors[0]!.pciAddresses).toEqual(['0000:00:08.0']);
    expect(findDevicePluginConflicts(entries)).toEqual([
      { pciAddress: '0000:00:07.0', kept: { resourceName: 'intel.com/a', driver: 'ena' }, dropped: [{ resourceName: 'intel.com/b', driver: 'ena' }] },
    ]);
    expect(findDevicePluginConflicts([entry('intel.com/a', '0000:00:07.0'), entry('intel.com/a', '0000:00:07.0')])).toEqual([]);
  });

  it('writes a placeholder that keeps the plugin alive when nothing is wanted', () => {
    const cfg = buildDevicePluginConfig([]);
    expect(cfg).toEqual({
      resourceList: [{ resourcePrefix: 'nodeeni.networking.k8s.aws', resourceName: 'placeholder', selectors: [{ drivers: ['nodeeni-placeholder'], pciAddresses: ['0000:00:00.0'] }] }],
    });
    expect(devicePluginConfigProblems(cfg)).toEqual([]);
    expect(resourcesOf(cfg)).toEqual({});
    // The returned config is a copy: changing it cannot change the next placeholder.
    cfg.resourceList[0]!.selectors[0]!.pciAddresses.push('0000:00:07.0');
    expect(buildDevicePluginConfig([]).resourceList[0]!.selectors[0]!.pciAddresses).toEqual(['0000:00:00.0']);
    expect(PLACEHOLDER_RESOURCE.selectors[0]!.pciAddresses).toEqual(['0000:00:00.0']);
  });

  it('rejects entries it cannot write, naming the entry', () => {
    expect(() => buildDevicePluginConfig([entry('intel.com/bad-name', '0000:00:07.0')])).toThrow(/invalid device plugin entry .*bad-name/);
    expect(() => buildDevicePluginConfig([entry('intel.com/a', '00:07.0')])).toThrow(/PCI address "00:07.0"/);
    expect(() => buildDevicePluginConfig([entry('intel.com/a', '0000:00:07.0', 'ena; rm -rf /')])).toThrow(/not a kernel driver name/);
    expect(() => buildDevicePluginConfig([entry('nodeeni.networking.k8s.aws/placeholder', '0000:00:07.0')])).toThrow(/reserved for the placeholder/);
    expect(devicePluginEntryProblem(entry('intel.com/a', '0000:00:07.0', 'vfio-pci'))).toBeUndefined();
  });
});

describe('serializeDevicePluginConfig', () => {
  const entries = [
    entry('intel.com/sriov_b', '0000:00:09.0', 'vfio-pci'),
    entry('intel.com/sriov_a', '0000:00:08.0'),
    entry('intel.com/sriov_a', '0000:00:07.0'),
    entry('amazon.com/dpdk', '0000:00:0b.0', 'vfio-pci'),
  ];

  it('is byte-stable whatever the input order', () => {
    const text = serializeDevicePluginConfig(buildDevicePluginConfig(entries));
    for (const perm of [[...entries].reverse(), [entries[2]!, entries[0]!, entries[3]!, entries[1]!, entries[0]!]]) {
      expect(serializeDevicePluginConfig(buildDevicePluginConfig(perm))).toBe(text);
    }
  });

  it('uses a 2-space indent, a fixed key order and a trailing newline', () => {
    const text = serializeDevicePluginConfig(buildDevicePluginConfig([entry('intel.com/a', '0000:00:07.0')]));
    expect(text).toBe(
      [
        '{',
        '  "resourceList": [',
        '    {',
        '      "resourcePrefix": "intel.com",',
        '      "resourceName": "a",',
        '      "selectors": [',
        '        {',
        '          "drivers": [',
        '            "ena"',
        '          ],',
        '          "pciAddresses": [',
        '            "0000:00:07.0"',
        '          ]',
        '        }',
        '      ]',
        '    }',
        '  ]',
        '}',
        '',
      ].join('\n'),
    );
    // Key order of the input object does not matter.
    const shuffled = { resourceList: [{ selectors: [{ pciAddresses: ['0000:00:07.0'], drivers: ['ena'] }], resourceName: 'a', resourcePrefix: 'intel.com' }] };
    expect(serializeDevicePluginConfig(shuffled)).toBe(text);
  });

  it('round-trips through parseDevicePluginConfig', () => {
    const cfg = buildDevicePluginConfig(entries);
    expect(parseDevicePluginConfig(serializeDevicePluginConfig(cfg))).toEqual(cfg);
    expect(parseDevicePluginConfig('not json')).toBeUndefined();
    expect(parseDevicePluginConfig('{"resourceList": "x"}')).toBeUndefined();
    expect(parseDevicePluginConfig('{"resourceList": [{"resourceName": "a", "selectors": [{"drivers": [1]}]}]}')).toBeUndefined();
    // The plugin's default prefix applies to a hand-written file without one.
    expect(parseDevicePluginConfig('{"resourceList": [{"resourceName": "a", "selectors": [{"drivers": ["ena"]}]}]}')).toEqual({
      resourceList: [{ resourcePrefix: 'intel.com', resourceName: 'a', selectors: [{ drivers: ['ena'], pciAddresses: [] }] }],
    });
  });
});

describe('devicePluginConfigProblems', () => {
  it('flags what would make the plugin exit or match too much', () => {
    expect(devicePluginConfigProblems({ resourceList: [] })).toEqual(['resourceList is empty: the device plugin exits on start']);
    const twice = buildDevicePluginConfig([entry('intel.com/a', '0000:00:07.0')]).resourceList[0]!;
    expect(devicePluginConfigProblems({ resourceList: [twice, twice] })).toEqual(['resource intel.com/a is listed twice: the device plugin exits on start']);
    expect(devicePluginConfigProblems({ resourceList: [{ resourcePrefix: 'intel.com', resourceName: 'a', selectors: [] }] })).toEqual([
      'resource intel.com/a has no selectors and would match every device',
    ]);
    expect(devicePluginConfigProblems({ resourceList: [{ resourcePrefix: 'intel.com', resourceName: 'a-b', selectors: [{ drivers: ['ena'], pciAddresses: ['0000:00:07.0'] }] }] })[0]).toMatch(
      /must be 1-63 letters/,
    );
  });
});
