import assert from 'node:assert/strict';
import { test } from 'node:test';

import { DragTracker } from '../src/ui/page-drop';
import { mergeSelection } from '../src/ui/picking';

test('the overlay shows while files are over any element and goes when they leave the window', () => {
  const t = new DragTracker();
  assert.equal(t.shown, false);
  t.enter(); // the page body
  assert.equal(t.shown, true);
  // Moving onto a child: the child is entered before the parent is left.
  t.enter();
  t.leave();
  assert.equal(t.shown, true, 'moving between elements keeps it shown');
  t.leave(); // out of the window
  assert.equal(t.shown, false);
  t.leave();
  assert.equal(t.shown, false, 'an unmatched dragleave never goes below zero');
  t.enter();
  assert.equal(t.shown, true, 'the next drag shows it again');
});

test('a drop anywhere ends the drag', () => {
  const t = new DragTracker();
  t.enter();
  t.enter();
  t.end();
  assert.equal(t.shown, false);
  t.enter();
  assert.equal(t.shown, true);
});

test('Esc hides the overlay until that drag has left or dropped', () => {
  const t = new DragTracker();
  t.cancel();
  assert.equal(t.cancelled, false, 'Esc without a drag does nothing');
  t.enter();
  t.cancel();
  assert.equal(t.shown, false);
  assert.equal(t.cancelled, true);
  t.enter();
  t.leave();
  assert.equal(t.shown, false, 'still cancelled while the same drag moves over the page');
  t.leave();
  assert.equal(t.cancelled, false, 'left the window: the next drag is a new one');
  t.enter();
  assert.equal(t.shown, true);
});

test('choosing files again adds only the files not chosen yet', () => {
  const file = (name: string, body: string, lastModified: number): { name: string; blob: Blob; mime: string } => ({
    name,
    blob: Object.assign(new Blob([body]), { lastModified }),
    mime: 'text/plain',
  });
  const a = file('a.txt', 'aaa', 1);
  const b = file('b.txt', 'bb', 1);
  const merged = mergeSelection([a], [file('a.txt', 'aaa', 1), b]);
  assert.deepEqual(merged.map((f) => f.name), ['a.txt', 'b.txt']);
  assert.equal(merged[0], a, 'the file chosen first stays');
  const changed = mergeSelection(merged, [file('a.txt', 'aaa', 2), file('b.txt', 'bbb', 1)]);
  assert.deepEqual(changed.map((f) => f.name), ['a.txt', 'b.txt', 'a.txt', 'b.txt'], 'another version of a file is another file');
  assert.deepEqual(mergeSelection([], [a, a]).length, 1, 'a drop listing a file twice chooses it once');
});
