"""Linux Landlock through ctypes: confine this process, and all it starts, to the paths a Confinement names.

Landlock (Linux 5.13+) is an unprivileged sandbox: once a process restricts
itself, every open, exec, create, remove or rename under a path no rule allows
fails with EACCES, whichever code asks and however the path was spelt
(symlinks and `..` are resolved by the kernel first). The restriction is
inherited across fork and exec and cannot be lifted. No dependency: three
system calls (444-446 on every architecture Linux gives them one number).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import platform

from .rules import READ, WRITE, Confinement

_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38

# Access rights by the ABI that introduced them (linux/landlock.h).
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REMOVE_DIR, REMOVE_FILE, MAKE_CHAR, MAKE_DIR, MAKE_REG = 1 << 4, 1 << 5, 1 << 6, 1 << 7, 1 << 8
MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK, MAKE_SYM = 1 << 9, 1 << 10, 1 << 11, 1 << 12
REFER, TRUNCATE = 1 << 13, 1 << 14  # ABI 2, ABI 3
_ABI1 = (1 << 13) - 1
_FILE_ONLY = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE  # the rights a rule on a non-directory may carry

_READ = EXECUTE | READ_FILE | READ_DIR
_WRITE = _READ | WRITE_FILE | REMOVE_DIR | REMOVE_FILE | MAKE_DIR | MAKE_REG | MAKE_SOCK | MAKE_FIFO | MAKE_SYM \
    | REFER | TRUNCATE
RIGHTS = {READ: _READ, WRITE: _WRITE}


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _libc():
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def abi_version() -> int:
    """The Landlock ABI this kernel offers; 0 where it has none (too old, switched off, not Linux)."""
    if platform.system() != "Linux":
        return 0
    try:
        version = _libc().syscall(_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    except (OSError, AttributeError):
        return 0
    return max(0, int(version))


def handled(abi: int) -> int:
    """Every filesystem right this ABI can restrict: what no rule names is denied."""
    rights = _ABI1
    if abi >= 2:
        rights |= REFER
    if abi >= 3:
        rights |= TRUNCATE
    return rights


def restrict(confinement: Confinement, abi: int = 0) -> int:
    """Confine this process (and its future children) as `confinement` says; returns the ABI in force.

    Paths that do not exist are skipped (a rule needs an open file). Raises OSError if the kernel
    refuses; callers decide whether a node without Landlock may go on."""
    abi = abi or abi_version()
    if abi < 1:
        raise OSError(errno.ENOSYS, "Landlock is not available on this kernel")
    libc = _libc()
    mask = handled(abi)
    attr = _RulesetAttr(mask)
    ruleset = libc.syscall(_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)),
                           ctypes.c_uint32(0))
    if ruleset < 0:
        raise _error(libc, "landlock_create_ruleset")
    try:
        for path, level in confinement.rules:
            _add(libc, ruleset, path, RIGHTS[level] & mask)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise _error(libc, "prctl(PR_SET_NO_NEW_PRIVS)")
        if libc.syscall(_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            raise _error(libc, "landlock_restrict_self")
    finally:
        os.close(ruleset)
    return abi


def _add(libc, ruleset: int, path: str, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # nothing there to allow
    try:
        if not os.path.isdir(f"/proc/self/fd/{fd}"):
            rights &= _FILE_ONLY
        beneath = _PathBeneathAttr(rights, fd)
        if libc.syscall(_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(_RULE_PATH_BENEATH), ctypes.byref(beneath),
                        ctypes.c_uint32(0)) != 0:
            raise _error(libc, f"landlock_add_rule({path})")
    finally:
        os.close(fd)


def _error(libc, call: str) -> OSError:
    number = ctypes.get_errno()
    return OSError(number, f"{call}: {os.strerror(number)}")
