"""The errno values the model returns (include/uapi/asm-generic/errno-base.h), in one place."""

ENOENT = 2
ENOMEM = 12
EFAULT = 14
EBUSY = 16
EEXIST = 17
EINVAL = 22
E2BIG = 7
ERANGE = 34
