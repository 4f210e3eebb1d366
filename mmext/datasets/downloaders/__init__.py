# Copyright (c) mmext contributors. All rights reserved.
"""Downloaders of data sets published as URL lists."""
from .image_urls import (STATUSES, DownloadRecord, download_images,
                         fetch_image, image_file_name, read_download_log,
                         write_download_log)

__all__ = ['STATUSES', 'DownloadRecord', 'download_images', 'fetch_image',
           'image_file_name', 'read_download_log', 'write_download_log']
