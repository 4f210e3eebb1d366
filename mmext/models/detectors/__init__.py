# Copyright (c) mmext contributors. All rights reserved.
from .butd import BUTDFasterRCNN

__all__ = ['BUTDFasterRCNN']
