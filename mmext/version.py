# Copyright (c) mmext contributors. All rights reserved.
__version__ = '0.1.0'


def parse_version_info(version_str):
    """Parse ``'1.2.3rc1'`` into ``(1, 2, 3, 'rc1')``."""
    parts = []
    for x in version_str.split('.'):
        if x.isdigit():
            parts.append(int(x))
        else:
            digits = ''.join(c for c in x if c.isdigit())
            rest = x[len(digits):]
            parts.extend([int(digits or 0), rest])
    return tuple(parts)


version_info = parse_version_info(__version__)
