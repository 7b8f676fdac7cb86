/**
 * A non-executing pickle interpreter (protocols 0–5 as written by torch and Python writers).
 *
 * Nothing is ever imported or called. GLOBAL/STACK_GLOBAL/INST are resolved through a caller-supplied
 * `resolveGlobal` (the allowlist lives in torch.ts); REDUCE/NEWOBJ/BUILD apply only the symbolic functions that
 * allowlist returns. Anything else is refused by name before any later opcode runs. Limits bound the work a
 * hostile pickle can cause (opcode count, memo size, nesting depth, string sizes).
 */
import { ColdstartError } from '../core/errors.js';

export class PyTuple {
  constructor(readonly items: PyValue[]) {}
}
/** dict / OrderedDict / Counter: insertion-ordered, keys compared by JS identity (strings and numbers by value). */
export class PyDict {
  readonly map = new Map<unknown, PyValue>();
  /** BUILD state (`__dict__`, e.g. a state_dict's `_metadata`): kept, never interpreted. */
  state?: PyValue;
  constructor(readonly kind: 'dict' | 'OrderedDict' | 'Counter' = 'dict') {}
}
export class PySet {
  readonly items: PyValue[] = [];
  constructor(readonly frozen = false) {}
}
/** A resolved, allowlisted global: a callable or class the allowlist evaluates symbolically. */
export class PyGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
    /** Symbolic evaluation of a call; absent for values that are not callable (dtypes, storage classes). */
    readonly call?: (args: PyValue[], ctx: CallContext) => PyValue,
    /** NEWOBJ (`cls.__new__(cls, *args)`): absent = NEWOBJ refused, as torch's weights_only loader does for non-classes. */
    readonly construct?: (args: PyValue[], ctx: CallContext) => PyValue,
  ) {}
  get qualname(): string {
    return `${this.module}.${this.name}`;
  }
}
/** An opaque symbolic object (torch.device("cpu"), a dtype, a layout…), never executed. */
export class PyObject {
  constructor(
    readonly type: string,
    readonly args: PyValue[],
    public state?: PyValue,
  ) {}
}
/** A Python float: kept apart from ints so that `0.0` is never taken for the integer 0 (torch refuses floats as sizes/offsets). */
export class PyFloat {
  constructor(readonly value: number) {}
}
/** The value of a persistent id after `persistentLoad` (torch storages). */
export type PyValue = null | boolean | number | bigint | PyFloat | string | Uint8Array | PyValue[] | PyTuple | PyDict | PySet | PyGlobal | PyObject | { readonly symbolic: string };

export interface CallContext {
  /** Where the pickle came from, for messages. */
  where: string;
}

export interface UnpickleOptions {
  where: string;
  /** Returns an allowlisted global or throws (refusing by name). */
  resolveGlobal(module: string, name: string): PyGlobal;
  /** Resolves a persistent id (torch: ('storage', type, key, location, numel)); absent = refused. */
  persistentLoad?(pid: PyValue): PyValue;
  /** Limits (defaults suit checkpoints of any real size). */
  maxOps?: number;
  maxMemo?: number;
  maxDepth?: number;
  maxStringBytes?: number;
  /** Estimated bytes of objects and references the pickle makes us create (cumulative, never freed). */
  maxObjectBytes?: number;
  /** Called on BUILD for a value that is not a container the reader knows (e.g. a tensor); absent = refused. */
  build?(obj: PyValue, state: PyValue): void;
}

/**
 * Limits. `maxObjectBytes` is what keeps memory bounded: every object the pickle creates and every reference it
 * stores is charged an estimate of its V8 size (a dict ~200 B, a tuple ~80 B + 8 per item…), cumulatively, so
 * 25 M EMPTY_DICTs or 10 M memoised dicts stop after ~1 M objects instead of growing the heap to gigabytes.
 * A real checkpoint costs ~1.2 KiB per tensor (measured: 20 000 tensors charge 23.5 MiB), so 64 MiB allows
 * ~54 000 tensors in one pickle file (sharded checkpoints hold a few thousand per file).
 */
export const PICKLE_LIMITS = { maxOps: 50_000_000, maxMemo: 10_000_000, maxDepth: 1000, maxStringBytes: 64 << 20, maxObjectBytes: 64 << 20 };

/** Estimated V8 costs charged against maxObjectBytes. */
const COST = { ref: 8, dict: 200, list: 80, tuple: 64, set: 120, object: 96, string: 40, bytes: 96 };

/** Thrown when the pickle runs past the end of the buffer (callers may retry with a larger window). */
export class PickleTruncated extends ColdstartError {
  constructor(where: string) {
    super('CORRUPT_FILE', `${where}: the pickle is truncated (it ends before its STOP opcode)`, { hint: 'The file is incomplete; re-download or re-save it.' });
  }
}

const MARK = Symbol('mark');
/** Largest frame a reader would buffer (CPython reads a whole frame at once). */
const MAX_FRAME = 1 << 30;

function hostileFrame(where: string, what: string): ColdstartError {
  return new ColdstartError('HOSTILE_FILE', `${where}: refused: malformed pickle framing: ${what} (frame tricks hide opcodes from scanners); nothing was executed`);
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
/**
 * UTF-8 as CPython's unpickler decodes it ("surrogatepass"): invalid bytes are refused (torch raises
 * UnicodeDecodeError); encoded lone surrogates (ED A0..BF xx) are decoded to lone UTF-16 surrogates, which callers
 * that need well-formed text (tensor names) refuse.
 */
export function decodeUtf8(b: Uint8Array, where: string): string {
  try {
    return strictUtf8.decode(b);
  } catch {
    let out = '';
    let start = 0;
    for (let i = 0; i + 2 < b.length + 0; i++) {
      if (b[i] === 0xed && b[i + 1]! >= 0xa0 && b[i + 1]! <= 0xbf && (b[i + 2]! & 0xc0) === 0x80) {
        try {
          out += strictUtf8.decode(b.subarray(start, i));
        } catch {
          break;
        }
        out += String.fromCharCode(0xd000 | ((b[i + 1]! & 0x3f) << 6) | (b[i + 2]! & 0x3f));
        i += 2;
        start = i + 1;
      }
    }
    try {
      if (start > 0) return out + strictUtf8.decode(b.subarray(start));
    } catch {
      /* fall through */
    }
    throw corrupt(where, 'a string is not valid UTF-8');
  }
}
type StackItem = PyValue | typeof MARK;

function corrupt(where: string, what: string): ColdstartError {
  return new ColdstartError('CORRUPT_FILE', `${where}: invalid pickle: ${what}`, { hint: 'The file is damaged or not a PyTorch checkpoint; re-download or re-save it.' });
}

function limitHit(where: string, what: string): ColdstartError {
  return new ColdstartError('HOSTILE_FILE', `${where}: refused: the pickle exceeds the ${what} limit (a pickle bomb?); nothing was executed`, {
    hint: 'Real checkpoints stay far below these limits; do not load this file with torch.load either.',
  });
}

/**
 * Interprets the pickle starting at `offset` of `buf`; returns the value and the offset just past STOP.
 * Throws PickleTruncated when the data ends early, CORRUPT_FILE / HOSTILE_FILE / UNSUPPORTED otherwise.
 */
export function unpickle(buf: Uint8Array, opts: UnpickleOptions, offset = 0): { value: PyValue; end: number } {
  const where = opts.where;
  const maxOps = opts.maxOps ?? PICKLE_LIMITS.maxOps;
  const maxMemo = opts.maxMemo ?? PICKLE_LIMITS.maxMemo;
  const maxDepth = opts.maxDepth ?? PICKLE_LIMITS.maxDepth;
  const maxStr = opts.maxStringBytes ?? PICKLE_LIMITS.maxStringBytes;
  const maxObj = opts.maxObjectBytes ?? PICKLE_LIMITS.maxObjectBytes;
  let objBytes = 0;
  /** Charges `n` estimated bytes; refuses the pickle past maxObjectBytes. */
  const charge = (n: number) => {
    objBytes += n;
    if (objBytes > maxObj) throw limitHit(where, `${Math.round(maxObj / 1048576)} MiB object-memory`);
  };
  // FRAME (protocol 4+): like CPython's pure-Python unpickler, no opcode may straddle the end of a frame and a new
  // frame may only start where the previous one ends. frameEnd < 0: not inside a frame.
  let frameEnd = -1;
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const ctx: CallContext = { where };
  let pos = offset;
  let stack: StackItem[] = [];
  const metastack: StackItem[][] = [];
  const memo = new Map<number, PyValue>();
  let ops = 0;

  const need = (n: number) => {
    if (frameEnd >= 0) {
      if (pos >= frameEnd) frameEnd = -1;
      else if (pos + n > frameEnd) throw hostileFrame(where, `an opcode at byte ${pos} runs past the end of its frame (byte ${frameEnd})`);
    }
    if (pos + n > buf.length) throw new PickleTruncated(where);
  };
  const u8 = () => {
    need(1);
    return buf[pos++]!;
  };
  const u16 = () => {
    need(2);
    const v = dv.getUint16(pos, true);
    pos += 2;
    return v;
  };
  const u32 = () => {
    need(4);
    const v = dv.getUint32(pos, true);
    pos += 4;
    return v;
  };
  const i32 = () => {
    need(4);
    const v = dv.getInt32(pos, true);
    pos += 4;
    return v;
  };
  const u64 = () => {
    need(8);
    const v = dv.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(maxStr)) throw limitHit(where, `${maxStr}-byte string`);
    return Number(v);
  };
  const bytes = (n: number) => {
    if (n > maxStr) throw limitHit(where, `${maxStr}-byte string`);
    need(n);
    const b = buf.subarray(pos, pos + n);
    pos += n;
    return b;
  };
  const line = () => {
    const start = pos;
    const inFrame = frameEnd >= 0 && pos < frameEnd ? frameEnd : -1;
    while (true) {
      if (inFrame >= 0 && pos >= inFrame) throw hostileFrame(where, `a text line at byte ${start} runs past the end of its frame (byte ${inFrame})`);
      need(1);
      if (buf[pos] === 0x0a) break;
      pos++;
      if (pos - start > 65536) throw corrupt(where, 'text line longer than 64 KiB');
    }
    const s = Buffer.from(buf.subarray(start, pos)).toString('latin1');
    pos++;
    return s;
  };
  const utf8 = (b: Uint8Array) => {
    charge(COST.string + b.length);
    return decodeUtf8(b, where);
  };
  const bin = (b: Uint8Array) => {
    charge(COST.bytes + b.length);
    return Uint8Array.from(b);
  };
  const pop = (): PyValue => {
    if (stack.length === 0) throw corrupt(where, `stack underflow at byte ${pos - 1}`);
    const v = stack.pop()!;
    if (v === MARK) throw corrupt(where, `unexpected MARK at byte ${pos - 1}`);
    return v;
  };
  const top = (): PyValue => {
    const v = stack[stack.length - 1];
    if (v === undefined || v === MARK) throw corrupt(where, `stack underflow at byte ${pos - 1}`);
    return v;
  };
  const popMark = (): PyValue[] => {
    const items = stack as PyValue[];
    if (items.some((x) => (x as StackItem) === MARK)) throw corrupt(where, 'nested MARK');
    const prev = metastack.pop();
    if (!prev) throw corrupt(where, `no MARK to pop at byte ${pos - 1}`);
    stack = prev;
    return items;
  };
  const push = (v: PyValue) => {
    charge(COST.ref);
    stack.push(v);
  };
  const memoPut = (k: number, v: PyValue) => {
    if (!memo.has(k) && memo.size >= maxMemo) throw limitHit(where, `${maxMemo}-entry memo`);
    charge(COST.ref * 4);
    memo.set(k, v);
  };
  const memoGet = (k: number) => {
    if (!memo.has(k)) throw corrupt(where, `memo key ${k} used before it was set`);
    return memo.get(k)!;
  };
  const globalOf = (module: string, name: string): PyGlobal => opts.resolveGlobal(module, name);
  const call = (fn: PyValue, args: PyValue[], how: string): PyValue => {
    if (!(fn instanceof PyGlobal)) throw corrupt(where, `${how} applied to a non-callable`);
    if (!fn.call) throw new ColdstartError('HOSTILE_FILE', `${where}: refused: the pickle calls ${fn.qualname}, which is not callable here; nothing was executed`);
    charge(COST.object + COST.ref * args.length);
    return fn.call(args, ctx);
  };
  const toInt = (v: PyValue, what: string): number => {
    if (typeof v === 'number' && Number.isInteger(v)) return v;
    if (typeof v === 'bigint' && v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(v);
    throw corrupt(where, `${what} is not an integer`);
  };
  const decodeLong = (b: Uint8Array): number | bigint => {
    if (b.length === 0) return 0;
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
    if (b[b.length - 1]! & 0x80) v -= 1n << BigInt(b.length * 8);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const setItems = (d: PyValue, items: PyValue[]) => {
    if (!(d instanceof PyDict)) throw corrupt(where, 'SETITEM(S) on a non-dict');
    if (items.length % 2) throw corrupt(where, 'odd number of items for SETITEMS');
    charge(COST.ref * 2 * items.length);
    for (let i = 0; i < items.length; i += 2) d.map.set(items[i], items[i + 1]!);
  };
  const appendItems = (l: PyValue, items: PyValue[]) => {
    charge(COST.ref * items.length);
    if (Array.isArray(l)) l.push(...items);
    else if (l instanceof PySet && !l.frozen) l.items.push(...items);
    else throw corrupt(where, 'APPEND(S)/ADDITEMS on a non-list');
  };

  while (true) {
    if (++ops > maxOps) throw limitHit(where, `${maxOps}-opcode`);
    const op = u8();
    switch (op) {
      case 0x80: {
        // PROTO
        const p = u8();
        if (p > 5) throw new ColdstartError('UNSUPPORTED', `${where}: pickle protocol ${p} is newer than this reader understands (0–5)`);
        break;
      }
      case 0x95: {
        // FRAME: the next n bytes are one frame; every opcode must lie wholly inside it
        // (its 8-byte length is read through the current frame, as CPython does, which must then be exhausted)
        const at = pos - 1;
        need(8);
        const n = dv.getBigUint64(pos, true);
        pos += 8;
        if (frameEnd >= 0 && pos < frameEnd) throw hostileFrame(where, `a new FRAME at byte ${at} starts before the current frame ends (byte ${frameEnd})`);
        frameEnd = -1;
        if (n > BigInt(buf.length - pos)) {
          if (n > BigInt(MAX_FRAME)) throw hostileFrame(where, `FRAME at byte ${pos - 9} declares ${n} bytes`);
          throw new PickleTruncated(where);
        }
        if (n > 0n) frameEnd = pos + Number(n);
        break;
      }
      case 0x2e: // STOP
        return { value: pop(), end: pos };
      case 0x28: // MARK
        if (metastack.length >= maxDepth) throw limitHit(where, `${maxDepth}-level nesting`);
        metastack.push(stack);
        stack = [];
        break;
      case 0x30: // POP
        if (stack.length && stack[stack.length - 1] === MARK) stack.pop();
        else pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        push(top());
        break;
      case 0x4e: // NONE
        push(null);
        break;
      case 0x88: // NEWTRUE
        push(true);
        break;
      case 0x89: // NEWFALSE
        push(false);
        break;
      case 0x49: {
        // INT (text): also True/False as 01/00
        const s = line();
        if (s === '01') push(true);
        else if (s === '00') push(false);
        else {
          if (!/^[-+]?\d+$/.test(s)) throw corrupt(where, `bad INT ${JSON.stringify(s)}`);
          const b = BigInt(s);
          push(b >= BigInt(Number.MIN_SAFE_INTEGER) && b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b);
        }
        break;
      }
      case 0x4a: // BININT
        push(i32());
        break;
      case 0x4b: // BININT1
        push(u8());
        break;
      case 0x4d: // BININT2
        push(u16());
        break;
      case 0x4c: {
        // LONG (text)
        const s = line().replace(/L$/, '');
        if (!/^[-+]?\d+$/.test(s)) throw corrupt(where, `bad LONG ${JSON.stringify(s)}`);
        const b = BigInt(s);
        push(b >= BigInt(Number.MIN_SAFE_INTEGER) && b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b);
        break;
      }
      case 0x8a: // LONG1
        push(decodeLong(bytes(u8())));
        break;
      case 0x8b: {
        // LONG4
        const n = i32();
        if (n < 0) throw corrupt(where, 'negative LONG4 length');
        if (n > 4096) throw limitHit(where, '4096-byte integer');
        push(decodeLong(bytes(n)));
        break;
      }
      case 0x46: {
        // FLOAT (text)
        const s = line();
        const f = Number(s);
        if (Number.isNaN(f) && !/nan/i.test(s)) throw corrupt(where, `bad FLOAT ${JSON.stringify(s)}`);
        charge(COST.object);
        push(new PyFloat(f));
        break;
      }
      case 0x47: // BINFLOAT (big-endian double)
        need(8);
        charge(COST.object);
        push(new PyFloat(dv.getFloat64(pos, false)));
        pos += 8;
        break;
      case 0x53: {
        // STRING (text, quoted repr): keep the raw contents for keys written by protocol 0
        const s = line();
        const m = /^(['"])(.*)\1$/s.exec(s);
        if (!m) throw corrupt(where, 'bad STRING');
        push(m[2]!.replace(/\\(.)/g, '$1'));
        break;
      }
      case 0x54: {
        // BINSTRING (py2 str): latin1
        const n = i32();
        if (n < 0) throw corrupt(where, 'negative BINSTRING length');
        push(utf8(bytes(n)));
        break;
      }
      case 0x55: // SHORT_BINSTRING: torch.load decodes py2 str with encoding="utf-8", strict
        push(utf8(bytes(u8())));
        break;
      case 0x56: // UNICODE (raw-unicode-escape line)
        charge(COST.string);
        push(line().replace(/\\u([0-9a-fA-F]{4})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16))));
        break;
      case 0x58: // BINUNICODE
        push(utf8(bytes(u32())));
        break;
      case 0x8c: // SHORT_BINUNICODE
        push(utf8(bytes(u8())));
        break;
      case 0x8d: // BINUNICODE8
        push(utf8(bytes(u64())));
        break;
      case 0x42: // BINBYTES
        push(bin(bytes(u32())));
        break;
      case 0x43: // SHORT_BINBYTES
        push(bin(bytes(u8())));
        break;
      case 0x8e: // BINBYTES8
        push(bin(bytes(u64())));
        break;
      case 0x96: // BYTEARRAY8
        push(bin(bytes(u64())));
        break;
      case 0x97: // NEXT_BUFFER
      case 0x98: // READONLY_BUFFER
        throw new ColdstartError('UNSUPPORTED', `${where}: the pickle uses out-of-band buffers (protocol 5 PickleBuffer), which torch checkpoints never contain`);
      case 0x5d: // EMPTY_LIST
        charge(COST.list);
        push([]);
        break;
      case 0x61: {
        // APPEND
        const v = pop();
        appendItems(top(), [v]);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        appendItems(top(), items);
        break;
      }
      case 0x6c: {
        // LIST
        const items = popMark();
        charge(COST.list + COST.ref * items.length);
        push(items);
        break;
      }
        break;
      case 0x29: // EMPTY_TUPLE
        charge(COST.tuple);
        push(new PyTuple([]));
        break;
      case 0x74: {
        // TUPLE
        const items = popMark();
        charge(COST.tuple + COST.ref * items.length);
        push(new PyTuple(items));
        break;
      }
      case 0x85: // TUPLE1
        charge(COST.tuple + COST.ref);
        push(new PyTuple([pop()]));
        break;
      case 0x86: {
        const b = pop();
        const a = pop();
        charge(COST.tuple + COST.ref * 2);
        push(new PyTuple([a, b]));
        break;
      }
      case 0x87: {
        const c = pop();
        const b = pop();
        const a = pop();
        charge(COST.tuple + COST.ref * 3);
        push(new PyTuple([a, b, c]));
        break;
      }
      case 0x7d: // EMPTY_DICT
        charge(COST.dict);
        push(new PyDict());
        break;
      case 0x64: {
        // DICT
        charge(COST.dict);
        const d = new PyDict();
        setItems(d, popMark());
        push(d);
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x8f: // EMPTY_SET
        charge(COST.set);
        push(new PySet());
        break;
      case 0x90: {
        // ADDITEMS
        const items = popMark();
        appendItems(top(), items);
        break;
      }
      case 0x91: {
        // FROZENSET
        charge(COST.set);
        const s = new PySet(true);
        s.items.push(...popMark());
        push(s);
        break;
      }
      case 0x63: {
        // GLOBAL "module\nname\n"
        const module = line();
        const name = line();
        push(globalOf(module, name));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') throw corrupt(where, 'STACK_GLOBAL with non-string operands');
        push(globalOf(module, name));
        break;
      }
      case 0x69: // INST
      case 0x6f: // OBJ
      case 0x92: // NEWOBJ_EX
        throw new ColdstartError('HOSTILE_FILE', `${where}: refused: the pickle uses ${op === 0x69 ? 'INST' : op === 0x6f ? 'OBJ' : 'NEWOBJ_EX'} at byte ${pos - 1}, an object-construction opcode that torch.save never writes and torch's weights_only loader refuses; nothing was executed`);
      case 0x52: {
        // REDUCE
        const args = pop();
        const fn = pop();
        if (!(args instanceof PyTuple)) throw corrupt(where, 'REDUCE arguments are not a tuple');
        push(call(fn, args.items, 'REDUCE'));
        break;
      }
      case 0x81: {
        // NEWOBJ
        const args = pop();
        const cls = pop();
        if (!(args instanceof PyTuple)) throw corrupt(where, 'NEWOBJ arguments are not a tuple');
        if (!(cls instanceof PyGlobal)) throw corrupt(where, 'NEWOBJ applied to a non-class');
        if (!cls.construct) throw new ColdstartError('HOSTILE_FILE', `${where}: refused: NEWOBJ on ${cls.qualname}, which is not a class torch's weights_only loader constructs; nothing was executed`);
        charge(COST.object + COST.ref * args.items.length);
        push(cls.construct(args.items, ctx));
        break;
      }
      case 0x62: {
        // BUILD: as torch's weights_only loader: state on an OrderedDict/Counter is kept (never interpreted);
        // anything else goes to opts.build (tensors) or is refused (plain dicts, sets, opaque objects).
        const state = pop();
        const obj = top();
        if (obj instanceof PyDict && obj.kind !== 'dict') obj.state = state;
        else if (opts.build) opts.build(obj, state);
        else throw new ColdstartError('HOSTILE_FILE', `${where}: refused: BUILD at byte ${pos - 1} on a value that cannot take state; nothing was executed`);
        break;
      }
      case 0x70: // PUT
        memoPut(toInt(Number(line()), 'PUT index'), top());
        break;
      case 0x71: // BINPUT
        memoPut(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memoPut(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memoPut(memo.size, top());
        break;
      case 0x67: // GET
        push(memoGet(toInt(Number(line()), 'GET index')));
        break;
      case 0x68: // BINGET
        push(memoGet(u8()));
        break;
      case 0x6a: // LONG_BINGET
        push(memoGet(u32()));
        break;
      case 0x50: // PERSID (text)
      case 0x51: {
        // BINPERSID
        const pid = op === 0x50 ? line() : pop();
        if (!opts.persistentLoad) throw new ColdstartError('HOSTILE_FILE', `${where}: refused: unexpected persistent id in this pickle`);
        push(opts.persistentLoad(pid));
        break;
      }
      case 0x82:
      case 0x83:
      case 0x84:
        throw new ColdstartError('HOSTILE_FILE', `${where}: refused: the pickle uses the copyreg extension registry (EXT opcodes), which resolves globals indirectly; nothing was executed`);
      default:
        throw corrupt(where, `unknown opcode 0x${op.toString(16).padStart(2, '0')} at byte ${pos - 1}`);
    }
  }
}
