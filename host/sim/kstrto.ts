// The kernel's number parsing for sysfs stores (lib/kstrtox.c): kstrtoul with
// base 0 accepts an optional '+', "0x" hex, leading-0 octal or decimal, and one
// trailing newline; anything else is EINVAL, overflow is ERANGE.
import { kernelError } from './errors.js';

const MAX_U64 = (1n << 64n) - 1n;

export function kstrtoul(buf: string): bigint {
  let s = buf.endsWith('\n') ? buf.slice(0, -1) : buf;
  if (s.startsWith('+')) s = s.slice(1);
  let digits: string;
  let radix: 8 | 10 | 16;
  if (/^0[xX]/.test(s)) {
    digits = s.slice(2);
    radix = 16;
  } else if (s.startsWith('0') && s.length > 1) {
    digits = s.slice(1);
    radix = 8;
  } else {
    digits = s;
    radix = 10;
  }
  const valid = { 8: /^[0-7]+$/, 10: /^[0-9]+$/, 16: /^[0-9a-fA-F]+$/ }[radix];
  if (!valid.test(digits)) throw kernelError('EINVAL', `not a number: ${JSON.stringify(buf)}`);
  const prefix = { 8: '0o', 10: '', 16: '0x' }[radix];
  const value = BigInt(prefix + digits);
  if (value > MAX_U64) throw kernelError('ERANGE', `out of range: ${JSON.stringify(buf)}`);
  return value;
}

/** What C's `(int)` cast does to an unsigned long (two's complement truncation). */
export function toCInt(value: bigint): number {
  return Number(BigInt.asIntN(32, value));
}

/** What C's `(unsigned int)` cast does to an unsigned long. */
export function toCUint(value: bigint): number {
  return Number(BigInt.asUintN(32, value));
}

/**
 * sysfs_streq: equal modulo one trailing newline on either side. Device and
 * driver names written to bind/unbind/drivers_probe are compared this way.
 */
export function sysfsStreq(a: string, b: string): boolean {
  const strip = (s: string) => (s.endsWith('\n') ? s.slice(0, -1) : s);
  return strip(a) === strip(b);
}
