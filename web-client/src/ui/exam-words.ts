/**
 * The words of the exam-mode indicator (home-view.ts): what this device may still do while
 * its lab is in exam mode (docs/PROTOCOL.md, "Exam mode"). Plain, so it is unit-tested.
 */

import type { ExamState } from '../engine/protocol';

/** The indicator's text, or null when the lab is not in exam mode. */
export function examWords(state: ExamState | null): string | null {
  if (state === null || !state.on) return null;
  if (state.bound) return 'Exam mode: you cannot send to or receive from other students; broadcasts and hand-ins still work.';
  const lab = state.lab === '' ? 'this lab' : state.lab;
  return `Exam mode in ${lab}: its students cannot send to or receive from each other or you one to one; broadcasts and hand-ins still work.`;
}

/** Why a person's send buttons are off while exam mode binds this device. */
export const EXAM_SEND_OFF = 'Exam mode: one-to-one sending is off until the instructor ends it.';
