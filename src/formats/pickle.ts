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
/** The value of a persistent id after `persistentLoad` (torch storages). */
export type PyValue = null | boolean | number | bigint | string | Uint8Array | PyValue[] | PyTuple | PyDict | PySet | PyGlobal | PyObject | { readonly symbolic: string };

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
}

export const PICKLE_LIMITS = { maxOps: 50_000_000, maxMemo: 10_000_000, maxDepth: 1000, maxStringBytes: 64 << 20 };

/** Thrown when the pickle runs past the end of the buffer (callers may retry with a larger window). */
export class PickleTruncated extends ColdstartError {
  constructor(where: string) {
    super('CORRUPT_FILE', `${where}: the pickle is truncated (it ends before its STOP opcode)`, { hint: 'The file is incomplete; re-download or re-save it.' });
  }
}

const MARK = Symbol('mark');
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
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const ctx: CallContext = { where };
  let pos = offset;
  let stack: StackItem[] = [];
  const metastack: StackItem[][] = [];
  const memo = new Map<number, PyValue>();
  let ops = 0;

  const need = (n: number) => {
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
    while (true) {
      need(1);
      if (buf[pos] === 0x0a) break;
      pos++;
      if (pos - start > 65536) throw corrupt(where, 'text line longer than 64 KiB');
    }
    const s = Buffer.from(buf.subarray(start, pos)).toString('latin1');
    pos++;
    return s;
  };
  const utf8 = (b: Uint8Array) => Buffer.from(b).toString('utf8');
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
    stack.push(v);
  };
  const memoPut = (k: number, v: PyValue) => {
    if (!memo.has(k) && memo.size >= maxMemo) throw limitHit(where, `${maxMemo}-entry memo`);
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
    for (let i = 0; i < items.length; i += 2) d.map.set(items[i], items[i + 1]!);
  };
  const appendItems = (l: PyValue, items: PyValue[]) => {
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
      case 0x95: // FRAME: a length hint only
        u64();
        break;
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
        push(f);
        break;
      }
      case 0x47: // BINFLOAT (big-endian double)
        need(8);
        push(dv.getFloat64(pos, false));
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
        push(Buffer.from(bytes(n)).toString('latin1'));
        break;
      }
      case 0x55: // SHORT_BINSTRING
        push(Buffer.from(bytes(u8())).toString('latin1'));
        break;
      case 0x56: // UNICODE (raw-unicode-escape line)
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
        push(Uint8Array.from(bytes(u32())));
        break;
      case 0x43: // SHORT_BINBYTES
        push(Uint8Array.from(bytes(u8())));
        break;
      case 0x8e: // BINBYTES8
        push(Uint8Array.from(bytes(u64())));
        break;
      case 0x96: // BYTEARRAY8
        push(Uint8Array.from(bytes(u64())));
        break;
      case 0x97: // NEXT_BUFFER
      case 0x98: // READONLY_BUFFER
        throw new ColdstartError('UNSUPPORTED', `${where}: the pickle uses out-of-band buffers (protocol 5 PickleBuffer), which torch checkpoints never contain`);
      case 0x5d: // EMPTY_LIST
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
      case 0x6c: // LIST
        push(popMark());
        break;
      case 0x29: // EMPTY_TUPLE
        push(new PyTuple([]));
        break;
      case 0x74: // TUPLE
        push(new PyTuple(popMark()));
        break;
      case 0x85: // TUPLE1
        push(new PyTuple([pop()]));
        break;
      case 0x86: {
        const b = pop();
        const a = pop();
        push(new PyTuple([a, b]));
        break;
      }
      case 0x87: {
        const c = pop();
        const b = pop();
        const a = pop();
        push(new PyTuple([a, b, c]));
        break;
      }
      case 0x7d: // EMPTY_DICT
        push(new PyDict());
        break;
      case 0x64: {
        // DICT
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
      case 0x69: {
        // INST: module, name lines, args from MARK; resolved like GLOBAL (so refused by name) then called
        const module = line();
        const name = line();
        const g = globalOf(module, name);
        push(call(g, popMark(), 'INST'));
        break;
      }
      case 0x6f: {
        // OBJ: MARK cls args…
        const items = popMark();
        if (items.length === 0) throw corrupt(where, 'OBJ without a class');
        push(call(items[0]!, items.slice(1), 'OBJ'));
        break;
      }
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
        push(call(cls, args.items, 'NEWOBJ'));
        break;
      }
      case 0x92: {
        // NEWOBJ_EX
        const kwargs = pop();
        const args = pop();
        const cls = pop();
        if (!(args instanceof PyTuple) || !(kwargs instanceof PyDict)) throw corrupt(where, 'NEWOBJ_EX with bad arguments');
        if (kwargs.map.size > 0) throw new ColdstartError('UNSUPPORTED', `${where}: keyword-argument object construction (NEWOBJ_EX) is not used by weight checkpoints`);
        push(call(cls, args.items, 'NEWOBJ_EX'));
        break;
      }
      case 0x62: {
        // BUILD: only symbolic objects, dicts and tensors accept state; state is kept, never executed
        const state = pop();
        const obj = top();
        if (obj instanceof PyDict) obj.state = state;
        else if (obj instanceof PyObject) obj.state = state;
        else if (obj !== null && typeof obj === 'object' && 'symbolic' in obj) {
          /* tensors: BUILD carries python attributes (e.g. _backward_hooks); not part of the data */
        } else throw new ColdstartError('HOSTILE_FILE', `${where}: refused: BUILD on a value that cannot take state; nothing was executed`);
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
