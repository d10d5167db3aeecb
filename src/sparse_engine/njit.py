"""The one place kernels are compiled: ``numba.njit`` copies of a module's plain functions.

kernels.py writes each kernel body once as plain Python over flat arrays; ``compile_module`` makes
the compiled copies (see kernels.py's docstring for why the globals are re-bound).
"""
from __future__ import annotations

import types


def _prefetch_intrinsic():
    """``prefetch(arr, i)`` for compiled code: llvm.prefetch of &arr[i] (read, high locality).
    A prefetch never faults, so an index past the end is harmless."""
    from llvmlite import ir
    from numba import types as nbt
    from numba.core import cgutils
    from numba.extending import intrinsic

    @intrinsic
    def prefetch_jit(typingctx, arr, idx):
        if not isinstance(arr, nbt.Array) or not isinstance(idx, nbt.Integer):
            return None

        def codegen(context, builder, signature, args):
            ary = context.make_array(signature.args[0])(context, builder, args[0])
            ptr = cgutils.get_item_pointer(context, builder, signature.args[0], ary, [args[1]], wraparound=False)
            i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
            fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
            fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
            builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
            return context.get_dummy_value()

        return nbt.void(arr, idx), codegen

    return prefetch_jit


def compile_module(namespace: dict, parallel: frozenset[str] = frozenset()) -> types.SimpleNamespace:
    """``numba.njit`` copies of every plain function defined in the module whose ``globals()`` is
    ``namespace``, each re-bound to the compiled others (and to ``numba.prange`` and the prefetch
    intrinsic), so a compiled kernel calls compiled helpers. ``parallel``: names compiled with
    ``parallel=True``."""
    import numba

    module = namespace["__name__"]
    names = [n for n, f in namespace.items() if isinstance(f, types.FunctionType) and f.__module__ == module
             and n != "prefetch"]  # fmt: skip
    env = dict(namespace, prange=numba.prange, prefetch=_prefetch_intrinsic())
    out = {}
    for name in names:
        f = namespace[name]
        clone = types.FunctionType(f.__code__, env, name, f.__defaults__, f.__closure__)
        out[name] = env[name] = numba.njit(nogil=True, cache=True, parallel=name in parallel)(clone)
    return types.SimpleNamespace(**out)
