#!/usr/bin/env python3
"""An independent check of kvscope's KV cache event stream, written from the
published format (vLLM's KV events as issue 19 and docs/kv-events.md state
it), not from kvscope's code: Debian's python3-zmq subscribes, python3-msgpack
decodes, and a small byte-level msgpack walker of our own checks what a
decoder hides (every block hash must be encoded as uint64, 0xcf + 8 bytes).

Usage: check_wire.py --connect tcp://127.0.0.1:PORT [--topic T]
                     [--format map|array] [--idle S] [--timeout S]
                     [--min-batches N] [--deep-every N]
Exit 0 when every message passed, 1 with the first problems listed.
"""

import argparse
import struct
import sys
import time

import msgpack
import zmq

STORED_FIELDS = ["block_hashes", "parent_block_hash", "token_ids", "block_size", "lora_id",
                 "medium", "lora_name", "extra_keys", "group_idx", "kv_cache_spec_kind",
                 "kv_cache_spec_sliding_window"]
STORED_REQUIRED = STORED_FIELDS[:7]
REMOVED_FIELDS = ["block_hashes", "medium", "group_idx"]
REMOVED_REQUIRED = REMOVED_FIELDS[:2]


class Raw:
    """A msgpack value with the byte that introduced it."""

    def __init__(self, tag, value):
        self.tag = tag
        self.value = value


def walk(data, pos=0):
    """Decodes one msgpack value at data[pos]; returns (Raw, next position).
    Containers hold Raw children, so the encoding of every integer is known."""
    b = data[pos]
    pos += 1
    if b <= 0x7F:
        return Raw(b, b), pos
    if b >= 0xE0:
        return Raw(b, b - 0x100), pos
    if 0x80 <= b <= 0x8F:
        return walk_map(data, pos, b & 0x0F, b)
    if 0x90 <= b <= 0x9F:
        return walk_array(data, pos, b & 0x0F, b)
    if 0xA0 <= b <= 0xBF:
        n = b & 0x1F
        return Raw(b, data[pos:pos + n].decode("utf-8")), pos + n
    if b == 0xC0:
        return Raw(b, None), pos
    if b in (0xC2, 0xC3):
        return Raw(b, b == 0xC3), pos
    sizes = {0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q",
             0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q", 0xCA: ">f", 0xCB: ">d"}
    if b in sizes:
        fmt = sizes[b]
        n = struct.calcsize(fmt)
        return Raw(b, struct.unpack(fmt, data[pos:pos + n])[0]), pos + n
    if b in (0xD9, 0xDA, 0xDB, 0xC4, 0xC5, 0xC6):
        width = {0xD9: 1, 0xDA: 2, 0xDB: 4, 0xC4: 1, 0xC5: 2, 0xC6: 4}[b]
        n = int.from_bytes(data[pos:pos + width], "big")
        pos += width
        body = data[pos:pos + n]
        return Raw(b, body.decode("utf-8") if b in (0xD9, 0xDA, 0xDB) else bytes(body)), pos + n
    if b in (0xDC, 0xDD):
        width = 2 if b == 0xDC else 4
        return walk_array(data, pos + width, int.from_bytes(data[pos:pos + width], "big"), b)
    if b in (0xDE, 0xDF):
        width = 2 if b == 0xDE else 4
        return walk_map(data, pos + width, int.from_bytes(data[pos:pos + width], "big"), b)
    raise ValueError("unexpected msgpack byte 0x%02x" % b)


def walk_array(data, pos, n, tag):
    items = []
    for _ in range(n):
        item, pos = walk(data, pos)
        items.append(item)
    return Raw(tag, items), pos


def walk_map(data, pos, n, tag):
    pairs = []
    for _ in range(n):
        key, pos = walk(data, pos)
        value, pos = walk(data, pos)
        pairs.append((key, value))
    return Raw(tag, pairs), pos


def plain(raw):
    """The Raw tree as plain Python values, as msgpack would decode it."""
    if isinstance(raw.value, list):
        if raw.tag in (0xDE, 0xDF) or 0x80 <= raw.tag <= 0x8F:
            return {plain(k): plain(v) for k, v in raw.value}
        return [plain(v) for v in raw.value]
    return raw.value


class Checker:
    def __init__(self, topic, event_format):
        self.topic = topic
        self.format = event_format
        self.problems = []
        self.batches = 0
        self.events = {"BlockStored": 0, "BlockRemoved": 0, "AllBlocksCleared": 0}
        self.hashes_checked = 0
        self.last_seq = None
        self.gaps = 0

    def problem(self, text):
        if len(self.problems) < 20:
            self.problems.append(text)

    def check_hash(self, raw, where):
        self.hashes_checked += 1
        if raw.tag != 0xCF:
            self.problem("%s: a block hash encoded with 0x%02x, not uint64 (0xcf)" % (where, raw.tag))

    def message(self, frames, deep):
        if len(frames) != 3:
            self.problem("a message of %d frames, not [topic, seq, payload]" % len(frames))
            return
        topic, seq, payload = frames
        if topic.decode("utf-8") != self.topic:
            self.problem("topic %r, expected %r" % (topic, self.topic))
        if len(seq) != 8:
            self.problem("a seq frame of %d bytes" % len(seq))
            return
        seq = int.from_bytes(seq, "big")
        if self.last_seq is not None and seq != self.last_seq + 1:
            self.gaps += 1
            self.problem("seq %d after %d" % (seq, self.last_seq))
        self.last_seq = seq
        self.batches += 1
        decoded = msgpack.unpackb(payload, raw=False, strict_map_key=False)
        if not isinstance(decoded, list) or len(decoded) != 3:
            self.problem("batch %d is not an array of 3" % seq)
            return
        ts, events, rank = decoded
        if not isinstance(ts, float) or not isinstance(events, list) or not isinstance(rank, int):
            self.problem("batch %d: [ts, events, dp_rank] have the wrong types" % seq)
            return
        if not events:
            self.problem("batch %d is empty" % seq)
        for event in events:
            self.count(event, seq)
        if deep:
            self.deep(payload, decoded, seq)

    def count(self, event, seq):
        kind = event.get("type") if isinstance(event, dict) else (event[0] if event else None)
        if kind not in self.events:
            self.problem("batch %d: an event of type %r" % (seq, kind))
            return
        self.events[kind] += 1

    def deep(self, payload, decoded, seq):
        """Byte-level checks of one batch: layout, key order, omitted
        optionals, integer encodings."""
        raw, end = walk(payload)
        if end != len(payload):
            self.problem("batch %d: %d bytes after the batch" % (seq, len(payload) - end))
        if plain(raw) != decoded:
            self.problem("batch %d: our walker and python3-msgpack disagree" % seq)
        if raw.value[0].tag != 0xCB:
            self.problem("batch %d: ts is not a float64" % seq)
        for event in raw.value[1].value:
            if self.format == "map":
                self.deep_map(event, seq)
            else:
                self.deep_array(event, seq)

    def deep_map(self, event, seq):
        if not (0x80 <= event.tag <= 0x8F or event.tag in (0xDE, 0xDF)):
            self.problem("batch %d: an event that is not a map" % seq)
            return
        keys = [k.value for k, _ in event.value]
        values = {k.value: v for k, v in event.value}
        if not keys or keys[0] != "type":
            self.problem("batch %d: an event whose first key is %r" % (seq, keys[:1]))
            return
        kind = values["type"].value
        if kind == "BlockStored":
            order, required = STORED_FIELDS, STORED_REQUIRED
        elif kind == "BlockRemoved":
            order, required = REMOVED_FIELDS, REMOVED_REQUIRED
        else:
            order, required = [], []
        if keys[1:] != [f for f in order if f in values]:
            self.problem("batch %d: %s keys out of order: %s" % (seq, kind, keys))
        for f in required:
            if f not in values:
                self.problem("batch %d: %s lacks %s" % (seq, kind, f))
        for f in order:
            if f in values and f not in required and values[f].value is None:
                self.problem("batch %d: %s writes the nil optional %s" % (seq, kind, f))
        self.check_fields(kind, values, seq)

    def deep_array(self, event, seq):
        items = event.value
        kind = items[0].value
        order = STORED_FIELDS if kind == "BlockStored" else REMOVED_FIELDS if kind == "BlockRemoved" else []
        values = dict(zip(order, items[1:]))
        if items[-1].value is None and len(items) > 1:
            self.problem("batch %d: %s ends in a nil optional" % (seq, kind))
        self.check_fields(kind, values, seq)

    def check_fields(self, kind, values, seq):
        where = "batch %d %s" % (seq, kind)
        if kind == "BlockStored":
            for h in values["block_hashes"].value:
                self.check_hash(h, where)
            if values["parent_block_hash"].value is not None:
                self.check_hash(values["parent_block_hash"], where + " parent")
            tokens = values["token_ids"].value
            if len(tokens) % max(1, values["block_size"].value) != 0 or \
                    len(tokens) // max(1, values["block_size"].value) != len(values["block_hashes"].value):
                self.problem("%s: %d tokens for %d blocks of %d" % (
                    where, len(tokens), len(values["block_hashes"].value), values["block_size"].value))
            if values["medium"].value != "GPU":
                self.problem("%s: medium %r" % (where, values["medium"].value))
            if "kv_cache_spec_kind" in values and values["kv_cache_spec_kind"].value != "full_attention":
                self.problem("%s: kind %r" % (where, values["kv_cache_spec_kind"].value))
            extra = values.get("extra_keys")
            if extra is not None and extra.value is not None and \
                    len(extra.value) != len(values["block_hashes"].value):
                self.problem("%s: extra_keys has %d entries for %d blocks" % (
                    where, len(extra.value), len(values["block_hashes"].value)))
        elif kind == "BlockRemoved":
            hashes = values["block_hashes"].value
            if len(hashes) != 1:
                self.problem("%s: %d hashes, not one" % (where, len(hashes)))
            for h in hashes:
                self.check_hash(h, where)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connect", required=True, help="the publisher's endpoint")
    parser.add_argument("--bind", action="store_true",
                        help="bind the endpoint and let the publisher connect (vLLM's non-wildcard rule)")
    parser.add_argument("--topic", default="")
    parser.add_argument("--format", choices=["map", "array"], default="map")
    parser.add_argument("--idle", type=float, default=3.0, help="stop after this long without a batch")
    parser.add_argument("--timeout", type=float, default=300.0, help="give up after this long")
    parser.add_argument("--min-batches", type=int, default=1)
    parser.add_argument("--deep-every", type=int, default=10, help="walk every n-th batch byte by byte")
    args = parser.parse_args()

    context = zmq.Context()
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 0)  # never drop on our side
    sub.setsockopt_string(zmq.SUBSCRIBE, args.topic)
    sub.setsockopt(zmq.RCVTIMEO, 200)
    if args.bind:
        sub.bind(args.connect)
    else:
        sub.connect(args.connect)
    checker = Checker(args.topic, args.format)
    start = last = time.monotonic()
    while time.monotonic() - start < args.timeout:
        if checker.batches > 0 and time.monotonic() - last > args.idle:
            break
        try:
            frames = sub.recv_multipart()
        except zmq.Again:
            continue
        last = time.monotonic()
        try:
            checker.message(frames, checker.batches % args.deep_every == 0)
        except Exception as error:  # a payload our walker or msgpack rejects
            checker.problem("a message failed to decode: %r" % (error,))
    print("check_wire: %d batches (seq up to %s), events %s, %d hashes checked byte by byte, %d gaps"
          % (checker.batches, checker.last_seq, checker.events, checker.hashes_checked, checker.gaps))
    if checker.batches < args.min_batches:
        checker.problem("only %d batches arrived (expected at least %d)" % (checker.batches, args.min_batches))
    if checker.hashes_checked == 0:
        checker.problem("no block hash was checked")
    for p in checker.problems:
        print("check_wire: PROBLEM: " + p)
    print("check_wire: %s" % ("PASS" if not checker.problems else "FAIL"))
    return 0 if not checker.problems else 1


if __name__ == "__main__":
    sys.exit(main())
