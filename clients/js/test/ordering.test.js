// The ordering Stream against the shared cases the Python client runs too.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { Stream } from "../switchboard.js";

const spec = JSON.parse(readFileSync(new URL("../../spec/ordering.json", import.meta.url), "utf8"));

function message([seq, epoch = "A"]) {
  const frame = { type: "message", from: "u", text: `m${seq}`, sentAt: "t" };
  if (seq !== null) Object.assign(frame, { seq, epoch });
  return frame;
}

function label(frame) {
  if (!("seq" in frame)) return "-";
  const text = frame.epoch === "A" ? String(frame.seq) : `${frame.epoch}:${frame.seq}`;
  return frame.replayed ? `${text} r` : text;
}

const position = (value) => (value === null ? null : [value.epoch, value.seq]);

function apply(stream, step) {
  switch (step.op) {
    case "begin": return [[], position(stream.begin())];
    case "receive": return [stream.receive(message(step.message)), undefined];
    case "seen": return [stream.seen(message(step.message)), undefined];
    case "settle": { const settled = stream.settle(step.ack); return [settled.released, settled]; }
    case "startFill": return [[], stream.startFill()];
    case "fill": {
      const settled = stream.fill(step.messages.map(message), step.complete);
      return [settled.released, settled];
    }
    case "covers": return [[], stream.covers(step.oldest)];
    case "forget": stream.forget(); return [[], undefined];
    default: throw new Error(`unknown op ${step.op}`);
  }
}

for (const testCase of spec.cases) {
  test(testCase.name, () => {
    const stream = new Stream(testCase.start ? { epoch: testCase.start[0], seq: testCase.start[1] } : null);
    testCase.steps.forEach((step, number) => {
      const where = `step ${number} (${step.op})`;
      const [released, answer] = apply(stream, step);
      assert.deepEqual(released.map(label), step.released, where);
      if (answer && typeof answer === "object" && "released" in answer) {
        if ("failed" in step) assert.equal(answer.failed, step.failed, where);
        if ("fillTo" in step) assert.equal(answer.fillTo, step.fillTo, where);
      }
      if ("since" in step) assert.deepEqual(answer, step.since, where);
      if ("returns" in step) assert.deepEqual(answer, step.returns, where);
      if ("gap" in step) assert.equal(stream.hasGap, step.gap, where);
      if ("position" in step) assert.deepEqual(position(stream.position), step.position, where);
      for (const counter of ["duplicates", "skipped"]) {
        if (counter in step) assert.equal(stream[counter], step[counter], `${where}: ${counter}`);
      }
    });
  });
}

test("frames released as replayed are copies", () => {
  const stream = new Stream({ epoch: "A", seq: 0 });
  stream.begin();
  const original = message([1]);
  stream.receive(original);
  const [released] = stream.settle({ epoch: "A", seq: 1, recovered: true }).released;
  assert.equal(released.replayed, true);
  assert.equal("replayed" in original, false);
});

for (const frame of [{ seq: true, epoch: "A" }, { seq: "1", epoch: "A" }, { seq: 1 }, { seq: -1, epoch: "A" }, { seq: 1.5, epoch: "A" }]) {
  test(`a frame without a valid position is released unordered: ${JSON.stringify(frame)}`, () => {
    const stream = new Stream({ epoch: "A", seq: 5 });
    assert.deepEqual(stream.receive(frame), [frame]);
    assert.deepEqual(stream.position, { epoch: "A", seq: 5 });
  });
}
