# Copyright (c) mmext contributors. All rights reserved.
"""Downloaders: images listed by URL (Conceptual Captions), and official
files with md5 sums (Oxford Flowers), fetched, extracted and verified."""
from .archives import (FetchError, OfficialRelease, download_files, fetch_file,
                       print_report, release_parser, run_release, safe_extract,
                       take_from_archive_dir)
from .flowers import FLOWERS17, FLOWERS102, check_flowers17, check_flowers102
from .image_urls import (STATUSES, DownloadRecord, download_images,
                         fetch_image, image_file_name, read_download_log,
                         write_download_log)

__all__ = [
    'STATUSES', 'DownloadRecord', 'download_images', 'fetch_image',
    'image_file_name', 'read_download_log', 'write_download_log'
]
__all__ += [
    'FetchError', 'OfficialRelease', 'download_files', 'fetch_file',
    'print_report', 'release_parser', 'run_release', 'safe_extract',
    'take_from_archive_dir', 'FLOWERS17', 'FLOWERS102', 'check_flowers17',
    'check_flowers102'
]
