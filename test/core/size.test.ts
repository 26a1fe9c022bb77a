/** One grammar for every byte count and rate an option takes. */
import { describe, expect, it } from 'vitest';
import { parseRate } from '../../src/core/bandwidth.js';
import { parseSize } from '../../src/core/size.js';

describe('parseSize', () => {
  it('takes digits, decimals, K/M/G/T in powers of 1024, B or iB, and spaces before the unit', () => {
    expect(parseSize('512')).toBe(512);
    expect(parseSize('512M')).toBe(512 * 2 ** 20);
    expect(parseSize('1.5G')).toBe(1.5 * 2 ** 30);
    expect(parseSize('2 GiB')).toBe(2 * 2 ** 30);
    expect(parseSize('1t')).toBe(2 ** 40);
    expect(parseSize('64KB')).toBe(65536);
    expect(parseSize('0.0001K')).toBe(1); // above 0 stays above 0
    expect(parseSize('0')).toBe(0);
  });

  it('refuses anything else, and /s where no rate is asked for', () => {
    for (const s of ['', 'M', '-1M', '1X', '1.M', '1e3', '1M/s', '1 M B', '1MiBB', '99999999999T']) expect(parseSize(s)).toBeNull();
    expect(parseSize('512Mi')).toBe(512 * 2 ** 20);
    expect(parseRate('1M/s')).toBe(2 ** 20);
    expect(parseRate('1.5 MiB/s')).toBe(1.5 * 2 ** 20);
  });
});
