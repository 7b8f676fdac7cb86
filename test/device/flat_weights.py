"""A model's weights in one flat buffer that can be released and reloaded at the same addresses: the device proof's
version of vLLM's sleep level 2 (weights discarded, reloaded on wake), so a snapshot image need not carry them.

On CUDA the buffer is CUDA virtual memory (cuMemAddressReserve + cuMemCreate/cuMemMap through libcuda, as vLLM's
CuMemAllocator does): release() unmaps and frees the physical memory and keeps the address range reserved, so every
tensor view and every captured CUDA graph still points at the right place once reload() has mapped new memory there
and read the bytes back from the safetensors files (the driver's checkpoint keeps a reserved range with nothing mapped:
H100, driver 580, 2026-12-05). On the CPU (the script's dry run) it is a private anonymous mapping whose pages release()
hands back to the kernel (MADV_DONTNEED: CRIU then has nothing to dump there).

The layout is each shard's data section, in file order, each starting on a 2 MiB boundary, so a reload is one
sequential read per shard, by one of two loaders (CS_LOADER, or load()'s argument):
  python     threads read 32 MiB pieces into pinned staging buffers and copy them to the device on their own streams
  coldstart  coldstart's own engine through src/python/coldstart_load.py (libcoldstart_load.so): one range per shard,
             straight into the reserved addresses
"""

import ctypes
import json
import mmap
import os
import struct
import threading

import coldstart_py  # noqa: F401  (coldstart_load's folder first on sys.path; a staged device tree has only dist/)
import torch

ALIGN = 2 << 20
PIECE = 32 << 20
DTYPES = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32}


def _up(n, a):
    return (n + a - 1) // a * a


def loader_name(loader=None):
    """Who reads the weights: the loader asked for, else CS_LOADER's, else python."""
    return loader or os.environ.get("CS_LOADER", "python")


def read_header(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    return 8 + n, header


class _Vmm:
    """The few libcuda calls a releasable device range needs (CUDA driver API, VMM)."""

    class _Loc(ctypes.Structure):
        _fields_ = [("type", ctypes.c_int), ("id", ctypes.c_int)]

    class _Flags(ctypes.Structure):
        _fields_ = [("compressionType", ctypes.c_ubyte), ("gpuDirectRDMACapable", ctypes.c_ubyte), ("usage", ctypes.c_ushort), ("reserved", ctypes.c_ubyte * 4)]

    class _Prop(ctypes.Structure):
        pass

    class _Access(ctypes.Structure):
        pass

    _Prop._fields_ = [
        ("type", ctypes.c_int),
        ("requestedHandleTypes", ctypes.c_int),
        ("location", _Loc),
        ("win32HandleMetaData", ctypes.c_void_p),
        ("allocFlags", _Flags),
    ]
    _Access._fields_ = [("location", _Loc), ("flags", ctypes.c_int)]

    def __init__(self, device):
        self.cu = ctypes.CDLL("libcuda.so.1")
        self.prop = self._Prop(type=1, requestedHandleTypes=0, location=self._Loc(type=1, id=device))
        self.access = self._Access(location=self._Loc(type=1, id=device), flags=3)
        g = ctypes.c_size_t()
        self._ok(self.cu.cuMemGetAllocationGranularity(ctypes.byref(g), ctypes.byref(self.prop), 0), "granularity")
        self.granularity = g.value

    def _ok(self, rc, what):
        if rc != 0:
            raise RuntimeError(f"CUDA driver {what} failed: error {rc}")

    def reserve(self, size):
        p = ctypes.c_uint64()
        rc = self.cu.cuMemAddressReserve(ctypes.byref(p), ctypes.c_size_t(size), ctypes.c_size_t(ALIGN), ctypes.c_uint64(0), ctypes.c_uint64(0))
        self._ok(rc, "cuMemAddressReserve")
        return p.value

    def map(self, ptr, size):
        h = ctypes.c_uint64()
        self._ok(self.cu.cuMemCreate(ctypes.byref(h), ctypes.c_size_t(size), ctypes.byref(self.prop), ctypes.c_uint64(0)), "cuMemCreate")
        self._ok(self.cu.cuMemMap(ctypes.c_uint64(ptr), ctypes.c_size_t(size), ctypes.c_size_t(0), h, ctypes.c_uint64(0)), "cuMemMap")
        self._ok(self.cu.cuMemSetAccess(ctypes.c_uint64(ptr), ctypes.c_size_t(size), ctypes.byref(self.access), ctypes.c_size_t(1)), "cuMemSetAccess")
        return h.value

    def unmap(self, ptr, size, handle):
        self._ok(self.cu.cuMemUnmap(ctypes.c_uint64(ptr), ctypes.c_size_t(size)), "cuMemUnmap")
        self._ok(self.cu.cuMemRelease(ctypes.c_uint64(handle)), "cuMemRelease")


class _CudaRange:
    """A device range as a torch tensor (through __cuda_array_interface__, no copy)."""

    def __init__(self, ptr, size):
        self.__cuda_array_interface__ = {"shape": (size,), "typestr": "|u1", "data": (ptr, False), "version": 3, "strides": None}


class FlatWeights:
    def __init__(self, folder, device):
        self.files = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".safetensors"))
        if not self.files:
            raise SystemExit(f"{folder}: no .safetensors files")
        self.device = device
        self.shards = []  # (path, data start in the file, data bytes, offset in the buffer, header)
        off = 0
        for path in self.files:
            start, header = read_header(path)
            n = max((t["data_offsets"][1] for t in header.values()), default=0)
            self.shards.append((path, start, n, off, header))
            off = _up(off + n, ALIGN)
        self.cuda = device == "cuda"
        if self.cuda:
            self.vmm = _Vmm(torch.cuda.current_device())
            self.size = _up(max(off, 1), self.vmm.granularity)
            self.ptr = self.vmm.reserve(self.size)
            self.handle = self.vmm.map(self.ptr, self.size)
            self.flat = torch.as_tensor(_CudaRange(self.ptr, self.size), device="cuda")
        else:
            self.size = _up(max(off, 1), mmap.PAGESIZE)
            self.mm = mmap.mmap(-1, self.size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
            self.flat = torch.frombuffer(self.mm, dtype=torch.uint8)
        self.resident = True
        self.backup = None

    @property
    def bytes(self):
        return sum(s[2] for s in self.shards)

    def tensors(self):
        """name → a view of the flat buffer with the tensor's dtype and shape."""
        out = {}
        for _path, _start, _n, base, header in self.shards:
            for name, t in header.items():
                a, b = t["data_offsets"]
                out[name] = self.flat[base + a : base + b].view(DTYPES[t["dtype"]]).view(t["shape"])
        return out

    def release(self):
        """The weights' memory back to the device (or the kernel); the addresses stay reserved."""
        if not self.resident:
            return
        if self.cuda:
            torch.cuda.synchronize()
            self.vmm.unmap(self.ptr, self.size, self.handle)
        else:
            self.mm.madvise(mmap.MADV_DONTNEED)
        self.resident = False

    def offload(self):
        """vLLM's sleep level 1: the weights copied into pinned host memory, then released on the device."""
        if not self.resident:
            return
        if self.cuda:
            self.backup = torch.empty(self.size, dtype=torch.uint8, pin_memory=True)
            self.backup.copy_(self.flat)
        else:
            self.backup = self.flat.clone()
        self.release()

    def restore_backup(self):
        """The offloaded weights back to the same addresses (host → device at the link's rate)."""
        self._map_again()
        self.flat.copy_(self.backup, non_blocking=True)
        if self.cuda:
            torch.cuda.synchronize()
        self.backup = None

    def reload(self, threads=None, piece=None, loader=None, disk_streams=None, cold=None):
        """New memory at the same addresses, the bytes read back from the files; the coldstart loader's result, if it read."""
        if self.resident:
            return None
        self._map_again()
        return self.load(threads, piece, loader, disk_streams, cold)

    def _map_again(self):
        """New device memory mapped at the reserved addresses (the CPU mapping never went away)."""
        if self.cuda:
            self.handle = self.vmm.map(self.ptr, self.size)
        self.resident = True

    def load(self, threads=None, piece=None, loader=None, disk_streams=None, cold=None):
        """The files' bytes into the buffer, by CS_LOADER's loader (python unless told); returns coldstart_load's
        result (bytes, seconds, cold_bytes, disk_readers_max, direct_refused) for the coldstart loader, None for the
        Python one."""
        loader = loader_name(loader)
        if loader == "coldstart":
            import coldstart_load

            ranges = [(path, start, n, self.flat.data_ptr() + base) for path, start, n, base, _h in self.shards]
            device = torch.cuda.current_device() if self.cuda else None
            # None: its defaults
            return coldstart_load.load(ranges, device=device, threads=threads, chunk_bytes=piece, disk_streams=disk_streams, cold=cold)
        threads = threads or int(os.environ.get("CS_LOAD_THREADS", min(8, os.cpu_count() or 1)))
        if loader != "python":
            raise ValueError(f"CS_LOADER={loader}: python or coldstart")
        piece = piece or PIECE
        pieces = []
        for path, start, n, base, _h in self.shards:
            for o in range(0, n, piece):
                pieces.append((path, start + o, base + o, min(piece, n - o)))
        it = iter(pieces)
        lock = threading.Lock()
        errors = []
        fds = {p: os.open(p, os.O_RDONLY) for p in self.files}

        def worker():
            try:
                if self.cuda:
                    stream = torch.cuda.Stream()
                    stage = [torch.empty(piece, dtype=torch.uint8, pin_memory=True) for _ in range(2)]
                    done = [None, None]
                i = 0
                while True:
                    with lock:
                        job = next(it, None)
                    if job is None:
                        break
                    path, src, dst, n = job
                    if not self.cuda:
                        got = os.preadv(fds[path], [memoryview(self.mm)[dst : dst + n]], src)
                    else:
                        s = i % 2
                        if done[s] is not None:
                            done[s].synchronize()
                        got = os.preadv(fds[path], [memoryview(stage[s].numpy())[:n]], src)
                        with torch.cuda.stream(stream):
                            self.flat[dst : dst + n].copy_(stage[s][:n], non_blocking=True)
                            done[s] = torch.cuda.Event()
                            done[s].record(stream)
                    if got != n:
                        raise OSError(f"{path}: short read at {src} ({got} of {n} bytes)")
                    i += 1
                if self.cuda:
                    stream.synchronize()
            except BaseException as e:  # noqa: BLE001 - handed to the caller below
                errors.append(e)

        try:
            ts = [threading.Thread(target=worker) for _ in range(threads)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
        finally:
            for fd in fds.values():
                os.close(fd)
        if errors:
            raise errors[0]
        if self.cuda:
            torch.cuda.synchronize()
            if hasattr(torch._C, "_host_emptyCache"):
                torch._C._host_emptyCache()  # the pinned staging is not kept (it would be in a snapshot image)
        return None
