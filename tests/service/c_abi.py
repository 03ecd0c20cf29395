"""Drives llmsd through the client's C ABI from Python with ctypes, as a binding would.

Usage: c_abi.py LIBLLMS_CLIENT_SO SOCKET. Prints the streamed text on one line, then the whole
reply on the next; exits nonzero on any error."""
import ctypes
import sys

lib = ctypes.CDLL(sys.argv[1])
TEXT_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t)


class CallOptions(ctypes.Structure):
    _fields_ = [("max_tokens", ctypes.c_size_t), ("temperature", ctypes.c_float),
                ("seed", ctypes.c_uint64)]


lib.llms_last_error.restype = ctypes.c_char_p
lib.llms_bind.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
lib.llms_new_ctx.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_uint64)]
lib.llms_call.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_char_p,
                          ctypes.POINTER(CallOptions), TEXT_FN, ctypes.c_void_p,
                          ctypes.POINTER(ctypes.c_char_p)]
lib.llms_del_ctx.argtypes = [ctypes.c_void_p, ctypes.c_uint64]
lib.llms_unbind.argtypes = [ctypes.c_void_p]
lib.llms_free.argtypes = [ctypes.c_void_p]


def check(rc):
    if rc != 0:
        sys.exit("llms error %d: %s" % (rc, lib.llms_last_error().decode()))


handle = ctypes.c_void_p()
check(lib.llms_bind(sys.argv[2].encode(), ctypes.byref(handle)))
ctx = ctypes.c_uint64()
check(lib.llms_new_ctx(handle, None, ctypes.byref(ctx)))
pieces = []


@TEXT_FN
def on_text(user, text, length):
    pieces.append(ctypes.string_at(text, length).decode())
    return 1


reply = ctypes.c_char_p()
options = CallOptions(12, 0.0, 0)
check(lib.llms_call(handle, ctx, b"Once upon a time", ctypes.byref(options), on_text, None,
                    ctypes.byref(reply)))
print("".join(pieces))
print(reply.value.decode())
lib.llms_free(reply)
check(lib.llms_del_ctx(handle, ctx))
if lib.llms_del_ctx(handle, ctx) != 1:  # LLMS_E_NOT_FOUND
    sys.exit("deleting twice should be not found")
lib.llms_unbind(handle)
