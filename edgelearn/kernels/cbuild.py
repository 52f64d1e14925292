"""Build the C firmware (firmware/) with the system compilers, cached by source hash (L1).

One recipe per build, so the shared library, the host firmware process, the vector harness
and the Cortex-M images are compiled the same way everywhere (tests, targets, benchmarks):

    python -m edgelearn.kernels.cbuild lib | lib-scalar | vectors | device | device-asan |
        vectors-cm3 | icount-cm3 | icount-cm4f | device-cm3 | device-cm4f [--verbose]
        prints the path of the (cached) build; --verbose also the compiler command (stderr)

A build lives in ``$EDGELEARN_CACHE`` (default ``$XDG_CACHE_HOME/edgelearn``, else
``~/.cache/edgelearn``) under a name made of the recipe and the SHA-256 of its sources, headers,
compiler version, flags, machine and CPU feature flags (``-march=native``); it is compiled to
a temporary name and renamed into place (atomic), so concurrent first uses are safe and a
changed source rebuilds. Raises :class:`BuildError` with a one-line reason when the sources or
a compiler are missing or the compiler fails.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgelearn.errors import EdgelearnError

KERNEL = ("el_fixed.c", "el_lif.c", "el_net.c", "el_lpl.c", "el_lpl_codes.c", "el_arena.c",
          "el_text.c", "el_engine.c", "el_head.c", "el_blob.c", "el_cycles.c")
DEVICE = ("el_crc32.c", "el_cobs.c", "el_link.c", "el_flash.c", "el_device.c")
ARM_CC = "arm-none-eabi-gcc"
CM3 = ("-mcpu=cortex-m3", "-mthumb")
CM4F = ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16")
_ARM = ("-O2", "-nostartfiles", "-Tport/mps2_an385/link.ld", "-Wl,--gc-sections",
        "-ffunction-sections", "-fdata-sections", "-specs=nano.specs")
_SEMIHOSTED = ("-DEL_SEMIHOSTING", "-specs=rdimon.specs", "-Itests")
_BARE = ("-specs=nosys.specs",)


class BuildError(EdgelearnError):
    """The C firmware could not be built here (no sources, no compiler, compile error)."""


@dataclass(frozen=True)
class Recipe:
    name: str
    sources: tuple[str, ...]        # relative to firmware/
    flags: tuple[str, ...]
    cross: bool = False             # arm-none-eabi-gcc instead of the host compiler
    suffix: str = ""
    libs: tuple[str, ...] = ()      # after the sources


def firmware_dir() -> Path | None:
    """The C sources: ``$EDGELEARN_FIRMWARE`` or the repository's firmware/ folder."""
    env = os.environ.get("EDGELEARN_FIRMWARE")
    p = Path(env) if env else Path(__file__).resolve().parents[2] / "firmware"
    return p if (p / "src" / "el_lif.c").is_file() else None


def cache_dir() -> Path:
    env = os.environ.get("EDGELEARN_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edgelearn"


def host_compiler() -> str | None:
    for cc in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cc and shutil.which(cc):
            return cc
    return None


def _cpu_id() -> str:
    """What -march=native depends on (a native build is only valid on this CPU kind)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor()


def _native_flags(cc: str) -> tuple[str, ...]:
    probe = subprocess.run([cc, "-march=native", "-x", "c", "-E", "-"], input=b"",
                           capture_output=True)
    return ("-march=native",) if probe.returncode == 0 else ()


_K = tuple(f"src/{f}" for f in KERNEL)
_D = tuple(f"src/{f}" for f in DEVICE)
_WARN = ("-std=c99", "-Wall", "-Wextra", "-Wno-unused-parameter")
#: the scalar form of the library: no auto-vectorisation and the compiler's default target
#: (no -march=native, so no host-only vector paths either); tests compare it with `lib`
_SCALAR = ("-fno-tree-vectorize", "-fno-tree-slp-vectorize")
_LIB = _WARN + ("-O3", "-fPIC", "-shared", "-pthread")


def recipes(cc: str | None) -> dict[str, Recipe]:
    native = _native_flags(cc) if cc else ()
    return {
        "lib": Recipe("lib", _K + ("lib/el_native.c",),
                      _LIB + native,
                      libs=("-lm", "-lpthread"), suffix=".so"),
        "lib-scalar": Recipe("lib-scalar", _K + ("lib/el_native.c",),
                             _LIB + _SCALAR,
                             libs=("-lm", "-lpthread"), suffix=".so"),
        "vectors": Recipe("vectors", _K + ("tests/test_vectors.c", "tests/npz.c"),
                          _WARN + ("-Werror", "-O2", "-Itests"), libs=("-lm",)),
        "device": Recipe("device", _K + _D + ("port/host/main.c",),
                         _WARN + ("-Werror", "-O2"), libs=("-lm",)),
        "device-asan": Recipe("device-asan", _K + _D + ("port/host/main.c",),
                              _WARN + ("-O1", "-g", "-fno-omit-frame-pointer",
                                       "-fsanitize=address,undefined",
                                       "-fno-sanitize-recover=all"), libs=("-lm",)),
        "vectors-cm3": Recipe("vectors-cm3", _K + ("tests/test_vectors.c", "tests/npz.c",
                                                   "port/mps2_an385/startup.c"),
                              _WARN + CM3 + _ARM + _SEMIHOSTED, cross=True, libs=("-lm",),
                              suffix=".elf"),
        "icount-cm3": Recipe("icount-cm3", _K + ("tests/icount.c", "tests/npz.c",
                                                 "port/mps2_an385/startup.c"),
                             _WARN + CM3 + _ARM + _SEMIHOSTED, cross=True, libs=("-lm",),
                             suffix=".elf"),
        "icount-cm4f": Recipe("icount-cm4f", _K + ("tests/icount.c", "tests/npz.c",
                                                   "port/mps2_an385/startup.c"),
                              _WARN + CM4F + _ARM + _SEMIHOSTED, cross=True, libs=("-lm",),
                              suffix=".elf"),
        "device-cm3": Recipe("device-cm3", _K + _D + ("port/mps2_an385/device_main.c",
                                                      "port/mps2_an385/startup.c"),
                             _WARN + CM3 + _ARM + _BARE, cross=True, libs=("-lm",),
                             suffix=".elf"),
        "device-cm4f": Recipe("device-cm4f", _K + _D + ("port/mps2_an385/device_main.c",
                                                        "port/mps2_an385/startup.c"),
                              _WARN + CM4F + _ARM + _BARE + ('-DEL_PROFILE="cortex-m4f-qemu"',),
                              cross=True, libs=("-lm",), suffix=".elf"),
    }


def _digest(root: Path, r: Recipe, cc: str) -> str:
    h = hashlib.sha256()
    files = [root / s for s in r.sources]
    headers = sorted(p for d in ("src", "tests", "port", "lib") for p in (root / d).rglob("*")
                     if p.suffix in (".h", ".ld"))
    for f in files + headers:
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    version = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout
    h.update(" ".join(r.flags + (version, platform.machine(), _cpu_id())).encode())
    return h.hexdigest()[:20]


def command(name: str, defines: dict[str, int | str] | None = None) -> tuple[list[str], Path]:
    """(compiler command without -o, output path) of a recipe; ``defines`` become -D flags
    (e.g. the Cortex-M build's EL_RAM and EL_FLASH)."""
    root = firmware_dir()
    if root is None:
        raise BuildError("firmware sources not found (set EDGELEARN_FIRMWARE to the firmware/ "
                         "folder)")
    host = host_compiler()
    table = recipes(host)
    if name not in table:
        raise BuildError(f"unknown firmware build '{name}'; choose from {sorted(table)}")
    r = table[name]
    if defines:
        r = Recipe(r.name, r.sources, r.flags + tuple(f"-D{k}={v}" for k, v in
                                                      sorted(defines.items())),
                   r.cross, r.suffix, r.libs)
    cc = ARM_CC if r.cross else host
    if cc is None or not shutil.which(cc):
        raise BuildError(f"no compiler for '{name}': install "
                         f"{'gcc-arm-none-eabi and libnewlib-arm-none-eabi' if r.cross else 'gcc'}")
    out = cache_dir() / f"el-{name}-{_digest(root, r, cc)}{r.suffix}"
    cmd = [cc, *r.flags, "-I", str(root / "src"), *(str(root / s) for s in r.sources)]
    return cmd + list(r.libs), out


def build(name: str, verbose: bool = False, defines: dict[str, int | str] | None = None
          ) -> Path:
    """The path of the cached build of recipe ``name`` (compiled if missing); ``verbose``
    prints the compiler command on stderr, also when the build is already cached."""
    cmd, out = command(name, defines)
    if verbose:
        print(" ".join(cmd + ["-o", str(out)]), file=sys.stderr)
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".el-", suffix=out.suffix, dir=out.parent)
    os.close(fd)
    try:
        r = subprocess.run(cmd[:1] + ["-o", tmp] + cmd[1:], capture_output=True, text=True,
                           cwd=firmware_dir())
        if r.returncode != 0:
            first = next((ln for ln in r.stderr.splitlines() if "error" in ln),
                         (r.stderr.strip().splitlines() or ["no output"])[0])
            raise BuildError(f"building '{name}' failed: {first[:200]}")
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="build the C firmware (cached by source hash)")
    ap.add_argument("target", help=" | ".join(recipes(None)))
    ap.add_argument("--verbose", action="store_true", help="print the compiler command")
    args = ap.parse_args(argv)
    try:
        print(build(args.target, args.verbose))
    except BuildError as exc:
        print(f"cbuild: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
