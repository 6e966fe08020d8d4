/**
 * What one filter evaluation may cost, and the RE2 patterns it runs.
 *
 * Matching is linear in the filter and in the event, but in their product: a path through an
 * array of 100,000 items tested by 400 branches of an `$or`, or a pattern RE2 compiles to 3,000
 * instructions searching 64 KiB, each took seconds of one core, with every other project waiting.
 * So an evaluation has a budget of work units, one unit being one RE2 instruction run over one
 * character (re2js costs up to ~100 ns a unit, measured on this project's 2-core machines for
 * patterns of 24 to 400 instructions searching text they match only at its end); a pattern
 * is charged its program size times the characters it reads, a path step or comparison a few
 * units. An evaluation that runs out stops and does not match, whatever is left of the filter:
 * the same event and filter always get the same verdict, and one evaluation blocks the process
 * for a few tens of milliseconds at most. Routing yields between evaluations (route.ts).
 */
import { RE2JS } from 're2js';

/** Longest `$regex` pattern, in characters. */
export const MAX_PATTERN_CHARS = 512;
/**
 * Largest compiled pattern, in RE2 instructions. Past ~2,000 re2js's DFA thrashes at ~24 ns a
 * unit; `[a-z]{1000}` (1,002) is over, `[a-z]{900}` under.
 */
export const MAX_PROGRAM = 1000;
/** Of a string, the part a `$regex` searches. */
export const REGEX_SUBJECT_CHARS = 65_536;
/**
 * Units one evaluation may spend: about 50 ms of one core at worst (~100 ns a unit), and far less
 * for most patterns, which run nearer 1 ns a character. An 8-instruction pattern (`needle`) reads
 * 60,000 characters, a 1,000-instruction one 500; a path and its test read some 60,000 array items.
 */
export const WORK_BUDGET = 500_000;
/** Units charged for a value visited along a path or tested (~40 to 150 ns for both, measured). */
export const STEP_UNITS = 4;

/** Thrown, once, out of an evaluation that has spent its budget; never escapes matchesFilter. */
export const OVER_BUDGET = new Error('filter evaluation over its work budget');

let left = WORK_BUDGET;

/** Starts an evaluation's budget (evaluations are synchronous, so they never overlap). */
export function startEvaluation(): void {
  left = WORK_BUDGET;
}

export function charge(units: number): void {
  left -= units;
  if (left < 0) throw OVER_BUDGET;
}

/** Whether `re` finds a match in `v` (in its first REGEX_SUBJECT_CHARS), charged before it runs. */
export function search(re: RE2JS, v: string): boolean {
  const subject = v.length > REGEX_SUBJECT_CHARS ? v.slice(0, REGEX_SUBJECT_CHARS) : v;
  charge(re.programSize() * (subject.length + 1));
  return re.test(subject);
}

/** The instructions all the patterns of one filter may compile to: ~10 ms of compiling. */
export const MAX_FILTER_PROGRAM = 10_000;

/**
 * Compiles the patterns of one filter (compiling costs ~1 µs an instruction, so the filter's
 * total is bounded too). Each answer is the compiled pattern or why it cannot be, a message for
 * the field.
 */
export class PatternCompiler {
  #left = MAX_FILTER_PROGRAM;

  compile(pattern: string): RE2JS | string {
    if (pattern.length > MAX_PATTERN_CHARS) return `must be at most ${MAX_PATTERN_CHARS} characters`;
    if (this.#left <= 0) return `is one pattern too many: a filter's patterns may compile to at most ${MAX_FILTER_PROGRAM} RE2 instructions in all`;
    let re: RE2JS;
    try {
      re = RE2JS.compile(pattern);
    } catch (err) {
      // re2js says what RE2 refused, e.g. "invalid or unsupported Perl syntax: `(?=`".
      const reason = (err as Error).message.replace(/^error parsing regexp: /, '');
      return `is not a pattern RE2 accepts (no backreferences or lookaround): ${reason}`;
    }
    const size = re.programSize();
    this.#left -= size;
    if (size > MAX_PROGRAM) {
      return `is too large: RE2 compiles it to ${size} instructions, at most ${MAX_PROGRAM} (use smaller counted repetitions such as {100})`;
    }
    if (this.#left < 0) return `is one pattern too many: a filter's patterns may compile to at most ${MAX_FILTER_PROGRAM} RE2 instructions in all`;
    return re;
  }
}
