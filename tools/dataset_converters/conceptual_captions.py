# Copyright (c) mmext contributors. All rights reserved.
"""Download the images of Conceptual Captions (data/conceptual_captions).

  python tools/dataset_converters/conceptual_captions.py download \\
      data/conceptual_captions/Validation_GCC-1.1.0-Validation.tsv
  python tools/dataset_converters/conceptual_captions.py summary \\
      data/conceptual_captions/Validation_GCC-1.1.0-Validation.tsv

``download`` fetches every URL of the TSV (``caption<TAB>url``) with
threads, resizes the image to 224 x 224 (LANCZOS), saves it as
``images/<sha1 of the URL>.jpg`` (JPEG q95) next to the TSV (or in
``--out``) and records each URL's fate (saved, http_error, timeout,
not_image, network_error, invalid_url) in ``<tsv stem>.downloads.csv``.
Run it again to resume: saved images and final failures (HTTP 4xx, not an
image) are skipped, timeouts and network errors retried
(``--retry-failed`` retries everything). A URL on several lines is fetched
once. The ViLBERT thesis settings were ``--timeout 0.3 --workers 80
--retries 0``. ``summary`` counts the TSV's lines per status.

``--timeout`` bounds each attempt as a whole (name lookup, connect,
headers, body); ``--decode-budget-mb`` bounds the memory all workers
together spend on decoded pixels. Ctrl-C stops the run within seconds and
writes the log of what finished (exit code 130); a TSV that is not UTF-8
text, a malformed line or a damaged log is one line naming the file and
the line (exit code 1).
"""
import argparse
import json
import os.path as osp
import sys

from mmext.datasets.conceptual_captions import (download_conceptual_captions,
                                                download_log_path,
                                                summarize_download)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='command', required=True)
    for name in ('download', 'summary'):
        p = sub.add_parser(name)
        p.add_argument(
            'tsv',
            help='Conceptual Captions TSV (caption<TAB>'
            'url per line)')
        p.add_argument('--out', help='output folder (default: the TSV\'s)')
    p = sub.choices['download']
    p.add_argument('--workers', type=int, default=32, help='threads')
    p.add_argument(
        '--timeout',
        type=float,
        default=5.0,
        help='seconds per attempt: name lookup, connect, headers and body')
    p.add_argument(
        '--retries',
        type=int,
        default=2,
        help='extra attempts after a timeout / 5xx')
    p.add_argument(
        '--backoff',
        type=float,
        default=1.0,
        help='seconds before the first retry (doubles)')
    p.add_argument('--size', type=int, default=224, help='output side')
    p.add_argument(
        '--decode-budget-mb',
        type=int,
        default=1024,
        help='MiB of decoded pixels all workers together may hold (one '
        'image at the 50-Mpx cap takes 430)')
    p.add_argument('--limit', type=int, help='first N lines only')
    p.add_argument(
        '--retry-failed',
        action='store_true',
        help='also retry HTTP 4xx and undecodable images')
    p.add_argument(
        '--no-progress', action='store_true', help='no progress bar')
    return parser.parse_args(argv)


def run(args):
    out = args.out or osp.dirname(osp.abspath(args.tsv))
    if args.command == 'summary':
        print(json.dumps(summarize_download(args.tsv, out), indent=1))
        return 0
    try:
        counts, log = download_conceptual_captions(
            args.tsv,
            out,
            limit=args.limit,
            workers=args.workers,
            retry_failed=args.retry_failed,
            progress=not args.no_progress,
            decode_budget=args.decode_budget_mb << 20,
            size=args.size,
            timeout=args.timeout,
            retries=args.retries,
            backoff=args.backoff)
    except KeyboardInterrupt:
        print(
            'interrupted: the log of what finished is '
            f'{download_log_path(args.tsv, out)}; run the '
            'same command again to resume',
            file=sys.stderr)
        return 130
    print(f'{counts["saved"]} images in {osp.join(out, "images")}; per '
          f'status: {json.dumps(counts)}; log: {log}')
    return 0


def main(argv=None):
    args = parse_args(argv)
    try:
        return run(args)
    except (ValueError, OSError) as e:  # InputFileError, RecordError, ...
        print(f'conceptual_captions.py {args.command}: {e}', file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
