/**
 * Which runtime bugs the property tests (executor.property, run.property) tolerate. A flag is on
 * (the bug tolerated) when the bug is still live (`live`: it has a failing regression test) or when
 * `SLUICE_PROPERTY_TOLERATE` names it (`1` = all), for a runtime that still has a fixed bug.
 * `SLUICE_STRICT_PROPERTIES=1` turns every flag off, live ones included.
 */

const TOLERATE = new Set((process.env.SLUICE_PROPERTY_TOLERATE ?? '').split(',').map((s) => s.trim()));
const ALL_STRICT = process.env.SLUICE_STRICT_PROPERTIES === '1';

/** Whether the properties tolerate the bug `name`. */
export const known = (name: string, live = false): boolean => !ALL_STRICT && (TOLERATE.has('1') || TOLERATE.has(name) || live);
