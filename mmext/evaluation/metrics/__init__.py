# Copyright (c) mmext contributors. All rights reserved.
__all__ = []
