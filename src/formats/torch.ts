/**
 * PyTorch checkpoints (`torch.save`), read without executing anything: the zip format (torch ≥ 1.6) and the
 * legacy format (`_use_new_zipfile_serialization=False`). `openTorchCheckpoint` returns tensor descriptors
 * (name, dtype, shape, strides, storage offset, storage) with every structural fact checked; no tensor data is
 * read. The allowlist of globals is modelled on torch's weights_only unpickler and evaluated symbolically.
 */
import { closeSync } from 'node:fs';
import { ColdstartError } from '../core/errors.js';
import { openInput } from '../core/files.js';
import { DTYPE_SIZES, TORCH_OTHER_SIZES, TORCH_STORAGE_CLASSES, TORCH_TO_DTYPE, torchElementSize, type Dtype } from './dtypes.js';
import { PickleTruncated, PyDict, PyFloat, PyGlobal, PyObject, PySet, PyTuple, unpickle, type PyValue } from './pickle.js';
import { looksLikeZip, openZip, readAt, readEntry, type ZipArchive } from './zip.js';

// ------------------------------------------------------------------------------------------------ public types

export interface StorageInfo {
  key: string;
  /** torch dtype name of the storage as declared (`uint8` for untyped storages). */
  torchDtype: string;
  elementSize: number;
  /** Elements as declared by the checkpoint (checked against the bytes present). */
  numel: number;
  nbytes: number;
  /** File holding the bytes, and the absolute offset where they start. */
  file: string;
  offset: number;
  /** true when the checkpoint's byteorder record says big-endian (data is byteswapped on the way). */
  bigEndian: boolean;
}

export interface TensorDescriptor {
  name: string;
  dtype: Dtype;
  shape: number[];
  /** In elements, like torch. */
  strides: number[];
  /** In elements of `dtype`, from the start of the storage. */
  storageOffset: number;
  storageKey: string;
  storage: StorageInfo;
  numel: number;
  /** Bytes of the materialised tensor: numel × element size. */
  nbytes: number;
  /** True when the tensor is the storage's bytes in order (a plain byte copy suffices). */
  contiguous: boolean;
}

export interface TorchCheckpoint {
  path: string;
  format: 'zip' | 'legacy';
  byteorder: 'little' | 'big';
  /** The record prefix inside the zip (e.g. `archive/`); '' for legacy files. */
  prefix: string;
  /** Dotted path of the wrapping key the weights came from (`state_dict`, `model`…), or '' for a plain state dict. */
  key: string;
  tensors: TensorDescriptor[];
  storages: Map<string, StorageInfo>;
  /** Other top-level keys of a wrapping checkpoint (epoch, optimizer…), for messages. */
  otherKeys: string[];
}

export interface OpenOptions {
  /** Which entry of a wrapping checkpoint holds the weights (dotted path, e.g. `model` or `module.state_dict`). */
  key?: string;
}

// ------------------------------------------------------------------------------------------------ symbolic values

class StorageRef {
  readonly symbolic = 'storage';
  constructor(readonly info: StorageInfo) {}
}
class TensorValue {
  readonly symbolic = 'tensor';
  constructor(
    readonly storage: StorageInfo,
    readonly torchDtype: string,
    readonly offset: number,
    readonly size: number[],
    readonly stride: number[],
  ) {}
}
/** A tensor the checkpoint holds but safetensors cannot (quantized, sparse, nested…): refused when selected. */
class RefusedTensor {
  readonly symbolic = 'refused';
  constructor(
    readonly what: string,
    readonly todo: string,
  ) {}
}

const DANGEROUS =
  /^(os|posix|nt|subprocess|_posixsubprocess|sys|builtins|__builtin__|shutil|socket|importlib|runpy|pty|ctypes|pickle|_pickle|marshal|types|code|codeop|webbrowser|operator|functools|io|_io|pathlib|tempfile|urllib|urllib2|http|requests|multiprocessing|threading|_thread|signal|platform|glob|commands|popen2|asyncio|posixpath|ntpath|copyreg|copy_reg|inspect|pdb|bdb|timeit|trace|cProfile|profile|imp|zipimport|pkgutil|site|sysconfig|distutils|setuptools|pip|torch\.hub|torch\.serialization|torch\._C|torch\.jit|torch\.ops|numpy\.testing|numpy\.f2py|_winapi|msvcrt|winreg|nturl2path|smtplib|ftplib|telnetlib|xmlrpc|sqlite3|dbm|shelve|ensurepip|venv|zipfile|tarfile|gzip|bz2|lzma|logging|cgi|wsgiref|socketserver|ssl|select|selectors|mmap|fcntl|resource|grp|pwd|spwd|crypt|readline|rlcompleter|code|dis|ast|compileall|py_compile|builtins\.)(\.|$)/;

const NOT_EXECUTED = 'nothing was executed';

function refuseGlobal(where: string, module: string, name: string): never {
  const q = `${module}.${name}`;
  if (DANGEROUS.test(module) || /^(eval|exec|getattr|setattr|__import__|open|compile|system|popen|apply|globals|locals|vars|input|breakpoint)$/.test(name)) {
    throw new ColdstartError('HOSTILE_FILE', `${where}: refused: the pickle references ${q}, which can run code or touch the system; ${NOT_EXECUTED}`, {
      hint: 'Only the weights_only allowlist (tensors, storages, dtypes, OrderedDict…) is interpreted. Do not torch.load this file; get the weights from a trusted source.',
    });
  }
  const modelish = module === '__main__' || module.startsWith('torch.nn.') || module.startsWith('transformers.') || /^[A-Z]/.test(name);
  throw new ColdstartError('UNSUPPORTED', `${where}: refused: the pickle references ${q}, which is not on the weights allowlist; ${NOT_EXECUTED}`, {
    hint: modelish
      ? 'This looks like a whole pickled object (torch.save(model) or a custom class). In trusted Python, re-save only the weights: torch.save(model.state_dict(), "weights.bin").'
      : 'Only tensors, storages, dtypes and plain containers can be converted; re-save the weights with torch.save(state_dict).',
  });
}

// ------------------------------------------------------------------------------------------------ the allowlist

interface LoadState {
  where: string;
  storageFor(storageType: PyGlobal, key: string, numel: number, viewMetadata: PyValue): StorageInfo;
}

function int(v: PyValue, where: string, what: string): number {
  if (typeof v === 'number' && Number.isSafeInteger(v)) return v;
  throw new ColdstartError('CORRUPT_FILE', `${where}: ${what} is not a valid integer`, { hint: 'The checkpoint is damaged or crafted.' });
}
function intTuple(v: PyValue, where: string, what: string): number[] {
  const items = v instanceof PyTuple ? v.items : Array.isArray(v) ? v : null;
  if (!items) throw new ColdstartError('CORRUPT_FILE', `${where}: ${what} is not a tuple of integers`);
  if (items.length > 64) throw new ColdstartError('HOSTILE_FILE', `${where}: refused: ${what} has ${items.length} dimensions (limit 64)`);
  return items.map((x) => int(x, where, what));
}

function dtypeName(v: PyValue, where: string): string {
  if (v instanceof PyGlobal && v.module === 'torch' && (TORCH_TO_DTYPE[v.name] || TORCH_OTHER_SIZES[v.name])) return v.name;
  throw new ColdstartError('CORRUPT_FILE', `${where}: tensor dtype argument is not a torch dtype`);
}

function rebuildTensor(where: string, storage: PyValue, offset: PyValue, size: PyValue, stride: PyValue, torchDtype?: string): TensorValue | RefusedTensor {
  if (!(storage instanceof StorageRef)) throw new ColdstartError('CORRUPT_FILE', `${where}: tensor rebuilt from something that is not a storage`);
  const info = storage.info;
  const dt = torchDtype ?? info.torchDtype;
  const t = new TensorValue(info, dt, int(offset, where, 'storage offset'), intTuple(size, where, 'tensor size'), intTuple(stride, where, 'tensor stride'));
  if (!TORCH_TO_DTYPE[dt]) {
    const todo = dt.startsWith('q')
      ? 'dequantize it in trusted Python (t.dequantize()) and re-save, or keep the quantized checkpoint format'
      : dt.startsWith('complex') || dt === 'cfloat' || dt === 'cdouble' || dt === 'chalf'
        ? 'store it as a real tensor with a trailing dimension of 2 (torch.view_as_real) and re-save'
        : 'cast it to a supported dtype (float32, float16, bfloat16, float8_e4m3fn, float8_e5m2, integers, bool) and re-save';
    return new RefusedTensor(`has dtype torch.${dt}, which safetensors cannot hold`, todo);
  }
  return t;
}

/** Python truthiness of a decoded value (for torch's `if metadata:`). */
function pyTruthy(m: PyValue | undefined): boolean {
  if (m === undefined || m === null || m === false || m === 0 || m === 0n || m === '') return false;
  if (m instanceof PyFloat) return m.value !== 0 && !Number.isNaN(m.value) ? true : Number.isNaN(m.value);
  if (m instanceof PyDict) return m.map.size > 0;
  if (m instanceof PyTuple) return m.items.length > 0;
  if (m instanceof PySet) return m.items.length > 0;
  if (Array.isArray(m) || m instanceof Uint8Array) return m.length > 0;
  return true;
}

function refused(what: string, todo: string) {
  return () => new RefusedTensor(what, todo);
}

function makeAllowlist(st: LoadState): Map<string, PyGlobal> {
  const w = st.where;
  const g = new Map<string, PyGlobal>();
  /** `construct`: NEWOBJ, i.e. `cls.__new__(cls, *args)` (dict/set subclasses ignore the arguments). */
  const add = (q: string, call?: (args: PyValue[]) => PyValue, construct?: (args: PyValue[]) => PyValue) => {
    const i = q.lastIndexOf('.');
    g.set(q, new PyGlobal(q.slice(0, i), q.slice(i + 1), call, construct));
  };
  const arity = (fn: string, a: PyValue[], min: number, max: number) => {
    if (a.length < min || a.length > max) throw new ColdstartError('CORRUPT_FILE', `${w}: ${fn} called with ${a.length} arguments (takes ${min === max ? min : `${min}–${max}`}); torch would refuse it too`);
  };
  const dictFrom = (kind: 'OrderedDict' | 'Counter') => (args: PyValue[]) => {
    const d = new PyDict(kind);
    const src = args[0];
    if (src === undefined || src === null) return d;
    if (src instanceof PyDict) for (const [k, v] of src.map) d.map.set(k, v);
    else if (Array.isArray(src)) {
      for (const it of src) {
        const pair = it instanceof PyTuple ? it.items : Array.isArray(it) ? it : null;
        if (!pair || pair.length !== 2) throw new ColdstartError('CORRUPT_FILE', `${w}: ${kind} built from a list that is not of pairs`);
        d.map.set(pair[0], pair[1]!);
      }
    } else throw new ColdstartError('CORRUPT_FILE', `${w}: ${kind} built from an unexpected value`);
    return d;
  };
  add('collections.OrderedDict', dictFrom('OrderedDict'), () => new PyDict('OrderedDict'));
  add('collections.Counter', dictFrom('Counter'), () => new PyDict('Counter'));
  const setFrom = (frozen: boolean) => (args: PyValue[]) => {
    const s = new PySet(frozen);
    const src = args[0];
    if (Array.isArray(src)) s.items.push(...src);
    else if (src instanceof PyTuple) s.items.push(...src.items);
    else if (src !== undefined) throw new ColdstartError('CORRUPT_FILE', `${w}: set built from an unexpected value`);
    return s;
  };
  add('builtins.set', setFrom(false), () => new PySet(false));
  add('builtins.frozenset', setFrom(true));
  add('builtins.bytearray', (args) => {
    const a = args[0];
    if (a === undefined) return new Uint8Array(0);
    if (a instanceof Uint8Array) return Uint8Array.from(a);
    if (typeof a === 'string') return Uint8Array.from(Buffer.from(a, 'latin1'));
    throw new ColdstartError('CORRUPT_FILE', `${w}: bytearray built from an unexpected value`);
  });
  add('builtins.complex', (args) => new PyObject('complex', args), (args) => new PyObject('complex', args));
  add('_codecs.encode', (args) => {
    const [s, enc] = args;
    if (typeof s !== 'string' || (enc !== 'latin1' && enc !== 'latin-1' && enc !== undefined)) throw new ColdstartError('CORRUPT_FILE', `${w}: _codecs.encode with unexpected arguments`);
    return Uint8Array.from(Buffer.from(s, 'latin1'));
  });
  const size = (args: PyValue[]) => new PyTuple(intTuple(args[0] ?? new PyTuple([]), w, 'torch.Size'));
  add('torch.Size', size, size);
  add('torch.device', (args) => new PyObject('torch.device', args), (args) => new PyObject('torch.device', args));
  add('torch.serialization._get_layout', (args) => new PyObject('torch.layout', args));
  add('torch.Tensor');
  add('torch._tensor.Tensor');
  for (const name of [...Object.keys(TORCH_TO_DTYPE), ...Object.keys(TORCH_OTHER_SIZES)]) add(`torch.${name}`);
  for (const q of ['per_tensor_affine', 'per_tensor_symmetric', 'per_channel_affine', 'per_channel_symmetric', 'per_channel_affine_float_qparams']) add(`torch.${q}`);
  for (const cls of Object.keys(TORCH_STORAGE_CLASSES)) {
    add(`torch.${cls}`);
    add(`torch.cuda.${cls}`);
  }
  add('torch.storage.UntypedStorage');
  add('torch.storage.TypedStorage');
  add('torch.storage._LegacyStorage');

  // Argument counts as the Python signatures take them (torch raises TypeError otherwise).
  add('torch._utils._rebuild_tensor', (a) => {
    arity('_rebuild_tensor', a, 4, 4);
    return rebuildTensor(w, a[0]!, a[1]!, a[2]!, a[3]!);
  });
  // requires_grad: torch assigns it (`tensor.requires_grad = …`), which takes only a bool, and only floating
  // tensors may require gradients.
  const grad = <T extends PyValue>(t: T, rg: PyValue, fn: string): T => {
    if (typeof rg !== 'boolean') throw new ColdstartError('CORRUPT_FILE', `${w}: ${fn}: requires_grad is not a bool; torch would refuse it too`);
    if (rg && t instanceof TensorValue && !/^(float|double|half|bfloat16|float(16|32|64)|complex.*|cfloat|cdouble|chalf|float8.*)$/.test(t.torchDtype)) {
      throw new ColdstartError('CORRUPT_FILE', `${w}: ${fn}: a ${t.torchDtype} tensor cannot require gradients; torch would refuse it too`);
    }
    return t;
  };
  // metadata, when truthy, goes to torch._C._set_tensor_metadata, which asserts a dict
  const meta = (m: PyValue | undefined, fn: string) => {
    if (pyTruthy(m) && !(m instanceof PyDict)) throw new ColdstartError('CORRUPT_FILE', `${w}: ${fn}: tensor metadata is not a dict; torch would refuse it too`);
  };
  add('torch._utils._rebuild_tensor_v2', (a) => {
    arity('_rebuild_tensor_v2', a, 6, 7);
    meta(a[6], '_rebuild_tensor_v2');
    return grad(rebuildTensor(w, a[0]!, a[1]!, a[2]!, a[3]!), a[4]!, '_rebuild_tensor_v2');
  });
  add('torch._utils._rebuild_tensor_v3', (a) => {
    arity('_rebuild_tensor_v3', a, 7, 8);
    meta(a[7], '_rebuild_tensor_v3');
    return grad(rebuildTensor(w, a[0]!, a[1]!, a[2]!, a[3]!, dtypeName(a[6]!, w)), a[4]!, '_rebuild_tensor_v3');
  });
  const paramOf = (a: PyValue[]) => {
    const t = a[0];
    if (!(t instanceof TensorValue) && !(t instanceof RefusedTensor)) throw new ColdstartError('CORRUPT_FILE', `${w}: a Parameter wraps something that is not a tensor`);
    return t;
  };
  add('torch._utils._rebuild_parameter', (a) => {
    arity('_rebuild_parameter', a, 3, 3);
    return grad(paramOf(a), a[1]!, '_rebuild_parameter');
  });
  add('torch._utils._rebuild_parameter_with_state', (a) => {
    arity('_rebuild_parameter_with_state', a, 4, 4);
    return grad(paramOf(a), a[1]!, '_rebuild_parameter_with_state');
  });
  // NEWOBJ Parameter: torch.nn.Parameter(data=None, requires_grad=True)
  const newParam = (a: PyValue[]) => {
    arity('Parameter', a, 1, 2);
    return paramOf(a);
  };
  add('torch.nn.parameter.Parameter', undefined, newParam);
  add('torch.nn.Parameter', undefined, newParam);
  add('torch._tensor._rebuild_from_type_v2', (a) => {
    arity('_rebuild_from_type_v2', a, 4, 4);
    const [fn, newType, args] = a;
    if (!(fn instanceof PyGlobal) || !fn.call || !(args instanceof PyTuple)) throw new ColdstartError('CORRUPT_FILE', `${w}: _rebuild_from_type_v2 with unexpected arguments`);
    if (!(newType instanceof PyGlobal) || !/^(torch\.Tensor|torch\._tensor\.Tensor|torch\.nn\.parameter\.Parameter|torch\.nn\.Parameter)$/.test(newType.qualname)) {
      return new RefusedTensor(`is a tensor subclass (${newType instanceof PyGlobal ? newType.qualname : '?'})`, 'convert it to a plain tensor in trusted Python and re-save');
    }
    return fn.call(args.items, { where: w });
  });
  const dequant = 'dequantize it in trusted Python (t.dequantize()) and re-save';
  add('torch._utils._rebuild_qtensor', refused('is a quantized tensor, which safetensors cannot hold', dequant));
  add('torch._utils._rebuild_sparse_tensor', refused('is a sparse tensor, which safetensors cannot hold', 'densify it (t.to_dense()) and re-save, or store its indices and values as separate tensors'));
  add('torch._utils._rebuild_sparse_csr', refused('is a sparse CSR tensor, which safetensors cannot hold', 'densify it (t.to_dense()) and re-save'));
  add('torch._utils._rebuild_nested_tensor', refused('is a nested tensor, which safetensors cannot hold', 'unbind it into regular tensors (t.unbind()) and re-save'));
  add('torch._utils._rebuild_meta_tensor_no_storage', refused('is a meta tensor with no data', 'materialise it (e.g. load real weights) before saving'));
  add('torch._utils._rebuild_wrapper_subclass', refused('is a tensor subclass without plain storage (DTensor, FakeTensor…)', 'gather it to a regular tensor (e.g. t.full_tensor()) and re-save'));
  add('torch._utils._rebuild_device_tensor_from_numpy', refused('was saved from a numpy array on a device', 're-save it as a regular CPU tensor'));
  add('torch._utils._rebuild_device_tensor_from_cpu_tensor', refused('is a device-specific tensor', 're-save it as a regular CPU tensor'));
  add('torch._utils._rebuild_xla_tensor', refused('is an XLA tensor', 're-save it as a regular CPU tensor'));
  add('torch._utils._rebuild_mtia_tensor', refused('is an MTIA tensor', 're-save it as a regular CPU tensor'));
  return g;
}

/** BUILD on anything but an OrderedDict/Counter (handled by the unpickler). */
function builder(where: string) {
  return (obj: PyValue): void => {
    if (obj instanceof TensorValue || obj instanceof RefusedTensor) {
      throw new ColdstartError('HOSTILE_FILE', `${where}: refused: BUILD (__setstate__) applied to a tensor, which torch.save never writes and which torch's loader would turn into set_() on other data; nothing was executed`);
    }
    throw new ColdstartError('HOSTILE_FILE', `${where}: refused: BUILD on a value that cannot take state (torch's weights_only loader refuses it too); nothing was executed`);
  };
}

function resolver(st: LoadState) {
  const allow = makeAllowlist(st);
  return (module: string, name: string): PyGlobal => {
    const m = module === '__builtin__' ? 'builtins' : module === 'copy_reg' ? 'copyreg' : module === 'commands' ? 'subprocess' : module;
    const hit = allow.get(`${m}.${name}`);
    if (hit) return hit;
    return refuseGlobal(st.where, m, name);
  };
}

function persistentLoader(st: LoadState, legacy: boolean) {
  return (pid: PyValue): PyValue => {
    const items = pid instanceof PyTuple ? pid.items : null;
    // torch unpacks exactly 5 fields (zip) or 6 (legacy: + view metadata)
    if (!items || items[0] !== 'storage' || items.length !== (legacy ? 6 : 5)) {
      throw new ColdstartError('CORRUPT_FILE', `${st.where}: unexpected persistent id (expected a torch storage reference)`);
    }
    const [, type, key, location, numel, view] = items;
    if (!(type instanceof PyGlobal) || !(type.name in TORCH_STORAGE_CLASSES)) throw new ColdstartError('CORRUPT_FILE', `${st.where}: storage reference without a storage class`);
    if (typeof key !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(key) || key === '.' || key === '..') throw new ColdstartError('HOSTILE_FILE', `${st.where}: refused: storage key ${JSON.stringify(key)} is not a plain identifier`);
    if (typeof location !== 'string') throw new ColdstartError('CORRUPT_FILE', `${st.where}: storage location is not a string`);
    if (!legacy && view !== undefined) throw new ColdstartError('CORRUPT_FILE', `${st.where}: storage reference has an unexpected sixth field`);
    return new StorageRef(st.storageFor(type, key, int(numel!, st.where, 'storage size'), view ?? null));
  };
}

// ------------------------------------------------------------------------------------------------ opening

/** data.pkl / legacy pickles: real ones are ~150 bytes per tensor (8 MiB for 54 000 tensors); 64 MiB bounds memory. */
const MAX_PICKLE_BYTES = 64 << 20;

/** Reads a checkpoint's structure (no tensor data) and selects the weights; every fact is validated. */
export function openTorchCheckpoint(path: string, options: OpenOptions = {}): TorchCheckpoint {
  const { fd, size } = openInput(path, 'is a directory; pass the directory itself as <input> to convert a model directory');
  try {
    if (size === 0) throw new ColdstartError('CORRUPT_FILE', `${path}: the file is empty (0 bytes), not a PyTorch checkpoint`, { hint: 'Re-download it; an interrupted download often leaves an empty file.' });
    const head = readAt(fd, 0, Math.min(size, 512), path);
    // The format is decided exactly as torch.load decides it (serialization._is_zipfile): a zip iff the file starts
    // with a local-file header; anything else is read as a legacy pickle. So a pickle with a zip appended is a
    // pickle (and refused for its trailing bytes), and a zip is only a zip from byte 0.
    if (head.length >= 4 && head.readUInt32LE(0) === 0x04034b50) {
      const zip = openZip(fd, size, path);
      if (!zip) throw new ColdstartError('CORRUPT_FILE', `${path}: a zip checkpoint without its central directory (truncated?)`, { hint: 'The file is incomplete; re-download or re-save it.' });
      if (zip.prefixBytes !== 0) throw new ColdstartError('HOSTILE_FILE', `${path}: refused: the zip directory places the archive ${zip.prefixBytes} bytes into the file, behind another zip header at byte 0 (two archives in one file); nothing was executed`);
      return openZipCheckpoint(fd, zip, path, options);
    }
    if (looksLikeZip(head)) throw new ColdstartError('CORRUPT_FILE', `${path}: an empty zip archive, not a torch.save checkpoint`, { hint: 'Pass a file written by torch.save.' });
    if (head.length > 262 && head.subarray(257, 262).toString('latin1') === 'ustar') {
      throw new ColdstartError('UNSUPPORTED', `${path}: a tar-format checkpoint from torch < 0.4 is not supported`, { hint: 'Load it with an old torch in trusted Python and re-save it with torch.save.' });
    }
    if (head[0] === 0x80) return openLegacyCheckpoint(fd, size, path, options);
    // torch reads anything that is not a zip as a legacy pickle, even one without a PROTO opcode: so do we,
    // keeping a refusal by name (a hostile global) and calling anything else "not a checkpoint"
    if (head.length >= 8 && !(head.subarray(0, 8).toString('latin1').startsWith('\u0093NUMPY') || head.subarray(0, 7).toString('latin1') === 'version') && !(head.length >= 9 && head.readBigUInt64LE(0) < BigInt(size) && head[8] === 0x7b)) {
      try {
        return openLegacyCheckpoint(fd, size, path, options);
      } catch (e) {
        if (e instanceof ColdstartError && (e.code === 'HOSTILE_FILE' || e.code === 'AMBIGUOUS' || e.code === 'BAD_INPUT' || e.code === 'BAD_FLAG')) throw e;
      }
    }
    if (head.subarray(0, 8).toString('latin1').startsWith('\u0093NUMPY') || head.subarray(0, 7).toString('latin1') === 'version') {
      throw new ColdstartError('UNSUPPORTED', `${path}: not a torch.save checkpoint (numpy or git-lfs pointer file?)`, { hint: 'If it is a git-lfs pointer, fetch the real file (git lfs pull).' });
    }
    if (head.length >= 9 && head.readBigUInt64LE(0) < BigInt(size) && head[8] === 0x7b) {
      throw new ColdstartError('BAD_INPUT', `${path}: this is already a safetensors file; nothing to convert`);
    }
    throw new ColdstartError('CORRUPT_FILE', `${path}: not a PyTorch checkpoint (neither a torch zip archive nor a legacy pickle)`, { hint: 'Pass a file written by torch.save (.bin, .pt, .pth, .ckpt).' });
  } finally {
    closeSync(fd);
  }
}

function openZipCheckpoint(fd: number, zip: ZipArchive, path: string, options: OpenOptions): TorchCheckpoint {
  const pkls = [...zip.entries.keys()].filter((n) => /^([^/]+\/)?data\.pkl$/.test(n));
  const names = [...zip.entries.keys()];
  if (names.some((n) => /(^|\/)constants\.pkl$/.test(n) || /(^|\/)code\//.test(n) || n === 'model.json' || /\/model\.json$/.test(n))) {
    throw new ColdstartError('UNSUPPORTED', `${path}: a TorchScript archive (torch.jit.save), not a weights checkpoint`, {
      hint: 'In trusted Python: m = torch.jit.load(path); torch.save(m.state_dict(), "weights.bin"), then convert weights.bin.',
    });
  }
  if (pkls.length !== 1) {
    throw new ColdstartError('CORRUPT_FILE', pkls.length === 0 ? `${path}: a zip archive without data.pkl; not a torch.save checkpoint` : `${path}: the archive has ${pkls.length} data.pkl records`, {
      hint: 'Pass a file written by torch.save.',
    });
  }
  const prefix = pkls[0]!.slice(0, -'data.pkl'.length);
  let byteorder: 'little' | 'big' = 'little';
  const bo = zip.entries.get(`${prefix}byteorder`);
  if (bo) {
    const s = readEntry(fd, bo, path, 16).toString('latin1');
    if (s !== 'little' && s !== 'big') throw new ColdstartError('CORRUPT_FILE', `${path}: byteorder record says ${JSON.stringify(s)}, expected "little" or "big"`);
    byteorder = s;
  }
  const storages = new Map<string, StorageInfo>();
  const state: LoadState = {
    where: path,
    storageFor(type, key, numel) {
      const torchDtype = TORCH_STORAGE_CLASSES[type.name]!;
      const esize = torchElementSize(torchDtype)!;
      const prev = storages.get(key);
      if (prev) {
        if (prev.torchDtype !== torchDtype || prev.numel !== numel) throw new ColdstartError('CORRUPT_FILE', `${path}: storage ${key} is referenced with two different types or sizes`);
        return prev;
      }
      const e = zip.entries.get(`${prefix}data/${key}`);
      if (!e) throw new ColdstartError('CORRUPT_FILE', `${path}: storage record ${prefix}data/${key} is missing from the archive`, { hint: 'The checkpoint is incomplete; re-save it.' });
      if (e.method !== 0) throw new ColdstartError('UNSUPPORTED', `${path}: storage record ${e.name} is compressed; torch writes storages uncompressed`, { hint: 'Re-save it with torch.save.' });
      const nbytes = numel * esize;
      if (!Number.isSafeInteger(nbytes) || nbytes !== e.size) {
        throw new ColdstartError('CORRUPT_FILE', `${path}: storage ${key} declares ${numel} × ${esize}-byte ${torchDtype} elements (${nbytes} bytes) but its record holds ${e.size} bytes`, {
          hint: 'The checkpoint lies about its storage sizes or is damaged; do not load it.',
        });
      }
      const info: StorageInfo = { key, torchDtype, elementSize: esize, numel, nbytes, file: path, offset: e.dataOffset, bigEndian: byteorder === 'big' };
      storages.set(key, info);
      return info;
    },
  };
  const pkl = readEntry(fd, zip.entries.get(pkls[0]!)!, path, MAX_PICKLE_BYTES);
  const { value, end } = unpickle(pkl, { where: path, resolveGlobal: resolver(state), persistentLoad: persistentLoader(state, false), build: builder(path) });
  if (end !== pkl.length) throw new ColdstartError('CORRUPT_FILE', `${path}: ${pkl.length - end} stray bytes after the pickle in data.pkl`);
  return finish(path, 'zip', byteorder, prefix, value, options);
}

const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;

function openLegacyCheckpoint(fd: number, size: number, path: string, options: OpenOptions): TorchCheckpoint {
  // The legacy format is five pickles back to back, then the raw storages; read a growing window.
  let window = Math.min(size, 16 << 20);
  for (;;) {
    const buf = readAt(fd, 0, window, path);
    try {
      return parseLegacy(fd, buf, size, path, options);
    } catch (e) {
      if (e instanceof PickleTruncated && window < size && window < MAX_PICKLE_BYTES) {
        window = Math.min(size, window * 4, MAX_PICKLE_BYTES);
        continue;
      }
      throw e;
    }
  }
}

function parseLegacy(fd: number, buf: Buffer, size: number, path: string, options: OpenOptions): TorchCheckpoint {
  // torch reads these small pickles with the same weights_only allowlist as the main one (no storages here)
  const noStorage: LoadState = {
    where: path,
    storageFor() {
      throw new ColdstartError('CORRUPT_FILE', `${path}: a storage reference outside the legacy checkpoint's main pickle`);
    },
  };
  const plain = { where: path, resolveGlobal: resolver(noStorage), build: builder(path) };
  const magic = unpickle(buf, plain, 0);
  const mv = magic.value;
  if (!(typeof mv === 'bigint' && mv === LEGACY_MAGIC)) throw new ColdstartError('CORRUPT_FILE', `${path}: a pickle, but not a torch.save checkpoint (magic number missing)`, { hint: 'Pass a file written by torch.save.' });
  const proto = unpickle(buf, plain, magic.end);
  if (proto.value !== 1001) throw new ColdstartError('UNSUPPORTED', `${path}: legacy checkpoint protocol ${String(proto.value)} (expected 1001)`);
  const sys = unpickle(buf, plain, proto.end);
  if (!(sys.value instanceof PyDict)) throw new ColdstartError('CORRUPT_FILE', `${path}: legacy sys_info record is not a dict`);
  const le = sys.value.map.get('little_endian');
  const byteorder: 'little' | 'big' = le === false ? 'big' : 'little';
  const referenced = new Map<string, { torchDtype: string; numel: number }>();
  const infos = new Map<string, StorageInfo>();
  const state: LoadState = {
    where: path,
    storageFor(type, key, numel, view) {
      if (view !== null) throw new ColdstartError('UNSUPPORTED', `${path}: legacy storage views (torch < 1.0) are not supported`, { hint: 'Re-save the checkpoint with a current torch.save.' });
      const torchDtype = TORCH_STORAGE_CLASSES[type.name]!;
      const prev = referenced.get(key);
      if (prev && (prev.torchDtype !== torchDtype || prev.numel !== numel)) throw new ColdstartError('CORRUPT_FILE', `${path}: storage ${key} is referenced with two different types or sizes`);
      referenced.set(key, { torchDtype, numel });
      let info = infos.get(key);
      if (!info) {
        const esize = torchElementSize(torchDtype)!;
        // Offsets are filled in once the storage table after the pickles has been read.
        info = { key, torchDtype, elementSize: esize, numel, nbytes: numel * esize, file: path, offset: -1, bigEndian: byteorder === 'big' };
        infos.set(key, info);
      }
      return info;
    },
  };
  const main = unpickle(buf, { where: path, resolveGlobal: resolver(state), persistentLoad: persistentLoader(state, true), build: builder(path) }, sys.end);
  const keys = unpickle(buf, plain, main.end);
  if (!Array.isArray(keys.value) || !keys.value.every((k) => typeof k === 'string')) throw new ColdstartError('CORRUPT_FILE', `${path}: legacy storage key list is damaged`);
  const keyList = keys.value as string[];
  if (new Set(keyList).size !== keyList.length) throw new ColdstartError('HOSTILE_FILE', `${path}: refused: the storage key list has duplicates`);
  let pos = keys.end;
  for (const key of keyList) {
    const info = infos.get(key);
    if (!info) throw new ColdstartError('CORRUPT_FILE', `${path}: storage ${key} is listed but never used`);
    if (pos + 8 > size) throw new ColdstartError('CORRUPT_FILE', `${path}: truncated before storage ${key}`, { hint: 'The file is incomplete; re-download it.' });
    const count = readAt(fd, pos, 8, path).readBigInt64LE(0);
    if (count !== BigInt(info.numel)) {
      throw new ColdstartError('CORRUPT_FILE', `${path}: storage ${key} declares ${info.numel} elements in the pickle but ${count} in its record`, { hint: 'The checkpoint lies about its storage sizes or is damaged; do not load it.' });
    }
    info.offset = pos + 8;
    pos += 8 + info.nbytes;
    if (pos > size) throw new ColdstartError('CORRUPT_FILE', `${path}: storage ${key} runs past the end of the file (truncated?)`, { hint: 'The file is incomplete; re-download it.' });
  }
  if (infos.size !== keyList.length) throw new ColdstartError('CORRUPT_FILE', `${path}: a storage used by a tensor is missing from the storage table`);
  if (pos !== size) {
    const tail = readAt(fd, pos, Math.min(size - pos, 4), path);
    if (looksLikeZip(tail)) throw new ColdstartError('HOSTILE_FILE', `${path}: refused: a legacy torch pickle with a zip archive appended at byte ${pos} (two formats in one file: torch.load would run the pickle, zip readers see the archive); nothing was executed`);
    throw new ColdstartError('CORRUPT_FILE', `${path}: ${size - pos} unexpected bytes after the last storage`);
  }
  return finish(path, 'legacy', byteorder, '', main.value, options);
}

// ------------------------------------------------------------------------------------------------ selecting the weights

function isTensorish(v: PyValue): boolean {
  return v instanceof TensorValue || v instanceof RefusedTensor;
}
function isTensorDict(v: PyValue): boolean {
  if (!(v instanceof PyDict) || v.map.size === 0) return false;
  for (const [k, x] of v.map) if (typeof k !== 'string' || !isTensorish(x)) return false;
  return true;
}

/** Dotted paths (through string-keyed dicts, depth ≤ 3) of dicts whose values are all tensors. */
function findCandidates(root: PyValue): string[] {
  const out: string[] = [];
  const seen = new Set<PyValue>();
  const walk = (v: PyValue, path: string, depth: number) => {
    if (!(v instanceof PyDict) || seen.has(v) || depth > 3 || out.length > 50) return;
    seen.add(v);
    if (isTensorDict(v)) {
      out.push(path);
      return;
    }
    for (const [k, x] of v.map) if (typeof k === 'string') walk(x, path ? `${path}.${k}` : k, depth + 1);
  };
  walk(root, '', 0);
  return out;
}

function lookup(root: PyValue, key: string): PyValue | undefined {
  if (root instanceof PyDict && root.map.has(key)) return root.map.get(key);
  let cur: PyValue | undefined = root;
  for (const part of key.split('.')) {
    if (!(cur instanceof PyDict) || !cur.map.has(part)) return undefined;
    cur = cur.map.get(part);
  }
  return cur;
}

const PREFERRED_KEYS = ['state_dict', 'model_state_dict', 'model', 'module', 'net', 'weights'];

function finish(path: string, format: 'zip' | 'legacy', byteorder: 'little' | 'big', prefix: string, root: PyValue, options: OpenOptions): TorchCheckpoint {
  let key = '';
  let dict: PyDict;
  const topKeys = root instanceof PyDict ? [...root.map.keys()].filter((k): k is string => typeof k === 'string') : [];
  if (options.key !== undefined) {
    const v = lookup(root, options.key);
    if (v === undefined) throw new ColdstartError('BAD_FLAG', `--key: ${JSON.stringify(options.key)} is not in ${path}`, { hint: `Top-level keys: ${topKeys.slice(0, 20).join(', ') || '(none)'}.` });
    if (!isTensorDict(v)) throw new ColdstartError('BAD_FLAG', `--key: ${JSON.stringify(options.key)} in ${path} is not a dict of tensors`, { hint: `Candidates: ${findCandidates(root).join(', ') || '(none)'}.` });
    key = options.key;
    dict = v as PyDict;
  } else if (isTensorDict(root)) {
    dict = root as PyDict;
  } else {
    const cands = findCandidates(root);
    let pick: string | undefined;
    if (cands.length === 1) pick = cands[0];
    else if (cands.length > 1) {
      const preferred = cands.filter((c) => PREFERRED_KEYS.includes(c));
      const others = cands.filter((c) => !PREFERRED_KEYS.includes(c) && !/^(optimizer|optim|scheduler|lr_scheduler|scaler)/.test(c));
      if (preferred.length === 1 && others.length === 0) pick = preferred[0];
    }
    if (pick === undefined) {
      if (cands.length === 0) {
        const has = root instanceof PyDict ? `top-level keys: ${topKeys.slice(0, 20).join(', ')}` : 'it is not a dict';
        throw new ColdstartError('BAD_INPUT', `${path}: no dict of tensors found (${has})`, { hint: 'Pass --key <path> to the entry holding the weights, or re-save a state_dict.' });
      }
      throw new ColdstartError('AMBIGUOUS', `${path}: several entries hold tensors: ${cands.join(', ')}`, { hint: `Choose one with --key, e.g. --key ${cands[0]}.` });
    }
    key = pick;
    dict = lookup(root, pick) as PyDict;
  }
  const tensors: TensorDescriptor[] = [];
  for (const [name, v] of dict.map) {
    const n = name as string;
    if (!isWellFormed(n)) {
      throw new ColdstartError('UNSUPPORTED', `${path}: tensor name ${JSON.stringify(n)} holds a lone UTF-16 surrogate, which a safetensors header (UTF-8 JSON) cannot hold`, { hint: 'Rename the tensor in trusted Python and re-save.' });
    }
    if (v instanceof RefusedTensor) {
      throw new ColdstartError('UNSUPPORTED', `${path}: tensor "${n}" ${v.what}`, { hint: `To convert, ${v.todo}.` });
    }
    tensors.push(describe(path, n, v as TensorValue));
  }
  const used = new Map<string, StorageInfo>();
  for (const t of tensors) used.set(t.storageKey, t.storage);
  return { path, format, byteorder, prefix, key, tensors, storages: used, otherKeys: key ? topKeys.filter((k) => k !== key.split('.')[0]) : [] };
}

function isWellFormed(s: string): boolean {
  return !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(s);
}

function describe(path: string, name: string, t: TensorValue): TensorDescriptor {
  const dtype = TORCH_TO_DTYPE[t.torchDtype]!;
  const esize = DTYPE_SIZES[dtype];
  const s = t.storage;
  const shape = t.size;
  const strides = t.stride;
  const bad = (what: string) =>
    new ColdstartError('CORRUPT_FILE', `${path}: tensor "${name}" ${what}`, { hint: 'The checkpoint is damaged or crafted; do not load it.' });
  if (shape.length !== strides.length) throw bad(`has ${shape.length} sizes but ${strides.length} strides`);
  if (shape.some((d) => d < 0) || strides.some((d) => d < 0) || t.offset < 0) throw bad('has a negative size, stride or offset');
  let numel = 1;
  for (const d of shape) {
    numel *= d;
    if (!Number.isSafeInteger(numel)) throw bad('is impossibly large');
  }
  // Storage sizes are in storage elements; a tensor may view an untyped (byte) storage with any dtype.
  if (s.nbytes % esize !== 0 && numel > 0) throw bad(`views a ${s.nbytes}-byte storage as ${dtype}, which does not divide`);
  const storageElems = Math.floor(s.nbytes / esize);
  if (s.torchDtype !== 'uint8' && s.elementSize !== esize) throw bad(`has dtype ${dtype} but its storage holds ${s.torchDtype}`);
  if (numel > 0) {
    let last = t.offset;
    for (let i = 0; i < shape.length; i++) {
      last += (shape[i]! - 1) * strides[i]!;
      if (!Number.isSafeInteger(last)) throw bad('has an impossible extent');
    }
    if (last >= storageElems) throw bad(`reaches element ${last} but its storage has only ${storageElems} (view out of bounds)`);
  } else if (t.offset > storageElems) throw bad('starts past the end of its storage');
  // contiguous: row-major strides (dimensions of size 1 may carry any stride)
  let expect = 1;
  let contiguous = true;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && strides[i] !== expect) contiguous = false;
    expect *= shape[i]!;
  }
  return { name, dtype, shape, strides, storageOffset: t.offset, storageKey: s.key, storage: s, numel, nbytes: numel * esize, contiguous };
}
