# Copyright (c) mmext contributors. All rights reserved.
"""Conceptual Captions (Sharma et al., ACL 2018): web images with
alt-text captions, given as a TSV of (caption, URL) to download."""
import codecs
import io
import os.path as osp
from collections import Counter

from mmengine.logging import print_log

from mmext.registry import DATASETS
from mmext.utils.fileio import InputFileError, open_regular_file
from .downloaders import download_images, image_file_name, read_download_log
from .image_text import ImageTextDataset, RecordError, inside, read_annotation

__all__ = [
    'ConceptualCaptions', 'read_cc_tsv', 'thesis_file_name',
    'download_conceptual_captions', 'download_log_path', 'summarize_download'
]

#: the official TSV of each split
SPLIT_FILES = {
    'train': 'Train_GCC-training.tsv',
    'val': 'Validation_GCC-1.1.0-Validation.tsv'
}

#: longest TSV line in bytes (real lines are a caption and a URL)
MAX_TSV_LINE = 1 << 20

_WIDE_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE,
              codecs.BOM_UTF16_BE)


def _tsv_lines(path):
    """``(line number, text)`` of each line of the TSV, numbered as text
    mode would (universal newlines; these numbers are the sample ids and
    the download log's keys).

    UTF-8 (with or without a BOM) is streamed and decoded line by line, so
    the 3.3M-line train TSV is never held as one string; a BOM'd
    UTF-16/32 file is read whole through :func:`read_annotation`.
    """
    what = 'ConceptualCaptions: annotation file'
    try:
        f = open_regular_file(path, what)
    except InputFileError as e:
        raise RecordError(str(e)) from None
    with f:
        head = f.read(4)
        if head.startswith(_WIDE_BOMS):
            text = read_annotation('ConceptualCaptions', path)
            yield from enumerate(io.StringIO(text, newline=None), 1)
            return
        f.seek(len(codecs.BOM_UTF8) if head.startswith(codecs.BOM_UTF8) else 0)
        line_no, offset = 0, f.tell()
        while True:
            raw = f.readline(MAX_TSV_LINE + 1)
            if not raw:
                return
            if len(raw) > MAX_TSV_LINE:
                raise RecordError(
                    f'ConceptualCaptions: {path}:{line_no + 1}: line longer '
                    f'than {MAX_TSV_LINE} bytes; expected "caption<TAB>url" '
                    'lines (is it the right file?)')
            try:
                text = raw.decode('utf-8')
            except UnicodeDecodeError as e:
                raise RecordError(
                    f'{what} {path} is not utf-8 text (byte '
                    f'{offset + e.start}, line {line_no + 1}: {e.reason}): '
                    'save it as UTF-8') from None
            offset += len(raw)
            if '\r' not in text:
                line_no += 1
                yield line_no, text
                continue
            for part in io.StringIO(text, newline=None):  # old Mac / CRLF
                line_no += 1
                yield line_no, part


def read_cc_tsv(path):
    """(line, caption, url) of each line of a Conceptual Captions TSV.

    The file has no header; each line is ``caption<TAB>url``. Blank lines
    are skipped; any other line without exactly two non-empty fields, a
    line longer than :data:`MAX_TSV_LINE` bytes or text that is not UTF-8
    (nor BOM'd UTF-16/32) raises :class:`RecordError` naming the file and
    the line.
    """
    for line_no, line in _tsv_lines(path):
        line = line.rstrip('\r\n')
        if not line.strip():
            continue
        fields = line.split('\t')
        if len(fields) != 2 or not fields[0].strip() or \
                not fields[1].strip():
            cause = 'an empty caption or URL' if len(fields) == 2 \
                else f'{len(fields)} tab-separated field(s)'
            raise RecordError(
                f'ConceptualCaptions: {path}:{line_no}: {cause}; '
                'expected "caption<TAB>url"')
        yield line_no, fields[0].strip(), fields[1].strip()


def thesis_file_name(url):
    """The ViLBERT thesis code's name for a URL's image: the URL's last
    path part without query and extension, plus ``.jpg``. Two URLs may
    share it (the later download overwrote the earlier)."""
    base = url.split('/')[-1].split('?')[0]
    if '.' in base:
        base = base.rsplit('.', 1)[0]
    return f'{base}.jpg'


def download_log_path(ann_file, out_dir):
    """The accounting CSV of a TSV: ``<out_dir>/<tsv stem>.downloads.csv``.
    """
    stem = osp.splitext(osp.basename(ann_file))[0]
    return osp.join(out_dir, f'{stem}.downloads.csv')


def download_conceptual_captions(ann_file, out_dir, limit=None, **kwargs):
    """Download the images of a Conceptual Captions TSV into
    ``out_dir/images/<sha1(url)>.jpg`` and account for every URL in
    :func:`download_log_path`. See
    :func:`mmext.datasets.downloaders.download_images` for ``kwargs``.

    Returns:
        tuple[dict, str]: counts per status and the log path.
    """
    items = read_cc_tsv(ann_file)
    if limit is not None:
        items = [it for _, it in zip(range(limit), items)]
    log = download_log_path(ann_file, out_dir)
    return download_images(items, out_dir, log, **kwargs), log


def summarize_download(ann_file, out_dir):
    """Count the TSV's lines per download status ('not attempted' for
    lines the log lacks or whose URL changed)."""
    records = read_download_log(download_log_path(ann_file, out_dir))
    counts = Counter()
    for line, _, url in read_cc_tsv(ann_file):
        rec = records.get(line)
        counts[rec.status if rec is not None and rec.url ==
               url else 'not attempted'] += 1
    return dict(counts)


@DATASETS.register_module()
class ConceptualCaptions(ImageTextDataset):
    """Conceptual Captions image-caption pairs, for pretraining.

    Reads the official TSV (``caption<TAB>url`` per line, no header) and
    the images that ``tools/dataset_converters/conceptual_captions.py
    download`` saved as ``images/<sha1 of the URL>.jpg`` (224 x 224). A
    name derived from the URL's hash cannot escape ``images/`` and never
    pairs a caption with another URL's image; ``naming='thesis'`` reads a
    folder downloaded by the ViLBERT thesis code instead
    (``images/<url-basename>.jpg``): there, URLs sharing a basename are
    ambiguous and left out, and basenames that are not plain file names
    are refused.

    Many URLs are dead, so missing images are normal: they are counted and
    skipped with one warning that, when the download log
    (``<tsv stem>.downloads.csv``) is there, breaks them down by cause
    (HTTP error, timeout, not an image, not attempted ...). A malformed TSV
    line raises :class:`RecordError` naming the file and the line.

    ``data_info`` keys: ``img_path``, ``text`` (the caption), ``id`` (the
    1-based TSV line, stable for a given TSV); mmengine adds
    ``sample_idx``.

    Args:
        data_root (str): Folder with the TSV, ``images/`` and the log.
        split (str): 'train' (``Train_GCC-training.tsv``) or 'val'
            (``Validation_GCC-1.1.0-Validation.tsv``). Defaults to 'val'.
        ann_file (str, optional): Another TSV (relative to ``data_root``);
            overrides ``split``. Defaults to None.
        img_prefix (str): Image folder. Defaults to 'images'.
        naming (str): 'sha1' (this project's downloader) or 'thesis'.
            Defaults to 'sha1'.
        **kwargs: See :class:`ImageTextDataset`.

    Example:
        >>> from mmext.testing import make_conceptual_captions
        >>> root = make_conceptual_captions('work_dirs/ex_cc', num=6,
        ...                                 missing=2)
        >>> ds = ConceptualCaptions(str(root), ann_file='captions.tsv')
        >>> len(ds), ds.num_missing, sorted(ds.get_data_info(0))
        (4, 2, ['id', 'img_path', 'sample_idx', 'text'])
    """

    LAYOUT = (
        'data/conceptual_captions/\n'
        '├── Train_GCC-training.tsv, Validation_GCC-1.1.0-Validation.tsv '
        '(caption<TAB>url, no header)\n'
        '├── images/<sha1 of the URL>.jpg  (224 x 224, written by '
        'tools/dataset_converters/conceptual_captions.py download)\n'
        '└── <tsv stem>.downloads.csv  (line,status,detail,file,url,'
        'caption: the fate of every URL)')
    MISSING_FIX = ('download them with python tools/dataset_converters/'
                   'conceptual_captions.py download <tsv>')

    def __init__(self,
                 data_root,
                 split='val',
                 ann_file=None,
                 img_prefix='images',
                 naming='sha1',
                 **kwargs):
        if ann_file is None:
            if split not in SPLIT_FILES:
                raise ValueError(f'ConceptualCaptions: split must be one of '
                                 f'{sorted(SPLIT_FILES)}, got {split!r}')
            ann_file = SPLIT_FILES[split]
        if naming not in ('sha1', 'thesis'):
            raise ValueError("ConceptualCaptions: naming must be 'sha1' or "
                             f"'thesis', got {naming!r}")
        self.split = split
        self.img_prefix_name = img_prefix
        self.naming = naming
        super().__init__(data_root, ann_file=ann_file, **kwargs)

    def load_records(self):
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(
                f'ConceptualCaptions: no {self.ann_file}; expected layout:'
                f'\n{self.LAYOUT}')
        folder = osp.join(self.data_root, self.img_prefix_name)
        rows = list(read_cc_tsv(self.ann_file))
        if not rows:
            raise RecordError(
                f'ConceptualCaptions: {self.ann_file} has no records; '
                'expected "caption<TAB>url" lines')
        if self.naming == 'sha1':
            names = [image_file_name(url) for _, _, url in rows]
        else:
            names = [thesis_file_name(url) for _, _, url in rows]
            counts = Counter(names)
            names = [n if counts[n] == 1 else None for n in names]
        data_list = []
        for (line, caption, url), name in zip(rows, names):
            path = inside(folder, name) if name else None
            if path is None or osp.dirname(path) != osp.normpath(folder):
                self.missing.append((line, f'<no safe name for {url}>'))
                continue
            data_list.append(dict(img_path=path, text=caption, id=line))
        return data_list

    def _report_missing(self, total, kept):
        log = download_log_path(self.ann_file, self.data_root)
        if osp.isfile(log):
            records = read_download_log(log)
            causes = Counter(
                records[line].status if line in records else 'not attempted'
                for line, _ in self.missing)
            print_log(
                f'ConceptualCaptions: causes of the missing images '
                f'(from {osp.basename(log)}): {dict(causes)}',
                logger='current',
                level=30)
        super()._report_missing(total, kept)
