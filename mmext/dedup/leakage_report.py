# Copyright (c) mmext contributors. All rights reserved.
"""Evidence and split files written from duplicate pairs.

* ``pairs.csv`` / ``pairs.json``: every pair with distance and variant;
* ``report.html``: self-contained (thumbnails embedded as base64 JPEG), so
  it can be attached to an issue or a paper's supplement as one file;
* ``pairs.png``: a contact sheet, each pair side by side with its distance;
* ``exclude.txt``: the training images to drop, one path per line relative
  to the data set's ``data_root`` with '/' separators, ``#`` comments
  (command, date, method, threshold), blank lines ignored — the format
  ``ExcludeImages`` reads (written and parsed only by
  :func:`~mmext.dedup.textio.write_exclude_file` /
  :func:`~mmext.dedup.textio.read_exclude_file`);
* ``skipped.csv``: inputs without a hash and why.

With the geometric stage (:mod:`mmext.dedup.geometric`) the pair files get
a ``stage`` column (``hash`` / ``geometric``) and the evidence of every
geometric pair (inliers, overlap, coverage, angle, scale, transform), and
``report.html`` shows each geometric pair as one side-by-side picture with
the matched region outlined (:func:`~mmext.dedup.geometric_report.
draw_geometric_pair`). Without it every file is as before.

Every path in these files is :func:`~mmext.dedup.textio.escape_path`-ed
(unchanged for UTF-8 names without ``\\`` or control characters;
:func:`~mmext.dedup.textio.unescape_path` gives any name back exactly), and
every file is written under a temporary name and renamed when complete;
:func:`write_leakage_outputs` renames the whole set only once all of it is
written, so a failure leaves the previous outputs intact.
"""
import csv
import html
import json
import os.path as osp

import numpy as np
from PIL import Image, ImageDraw

from mmext.utils.images import image_data_uri, thumbnail
from .textio import StagedFiles, atomic_write, escape_path, write_exclude_file

__all__ = [
    'write_pairs_csv', 'write_pairs_json', 'write_skipped_csv',
    'write_html_report', 'write_contact_sheet', 'write_leakage_outputs',
    'LEAKAGE_OUTPUTS'
]

#: The files :func:`write_leakage_outputs` writes.
LEAKAGE_OUTPUTS = ('pairs.csv', 'pairs.json', 'report.html', 'pairs.png',
                   'skipped.csv', 'exclude.txt')

#: Evidence columns of the geometric stage, after ``stage``.
EVIDENCE_COLUMNS = ('inliers', 'overlap', 'coverage', 'support', 'angle',
                    'scale', 'transform')


def _evidence(pair):
    """``{stage, inliers, ...}`` of a pair (empty evidence for a hash
    pair)."""
    stage = getattr(pair, 'stage', 'hash')
    row = {'stage': stage}
    for k in EVIDENCE_COLUMNS:
        row[k] = getattr(pair, k, None) if stage == 'geometric' else None
    return row


def write_pairs_csv(pairs, out_file, names=('query', 'ref'), stages=False):
    """One row per pair: ``<names[0]>_path, <names[1]>_path, distance,
    variant`` (and with ``stages``: ``stage`` and
    :data:`EVIDENCE_COLUMNS`, the transform as JSON)."""
    with atomic_write(out_file, newline='', encoding='utf-8') as f:
        writer = csv.writer(f)
        head = [f'{names[0]}_path', f'{names[1]}_path', 'distance', 'variant']
        writer.writerow(head +
                        (['stage', *EVIDENCE_COLUMNS] if stages else []))
        for p in pairs:
            row = [
                escape_path(p.query_path),
                escape_path(p.ref_path),
                '' if p.distance is None else p.distance, p.variant
            ]
            if stages:
                ev = _evidence(p)
                if ev['transform'] is not None:
                    ev['transform'] = json.dumps(ev['transform'])
                row += ['' if v is None else v for v in ev.values()]
            writer.writerow(row)


def write_pairs_json(pairs,
                     out_file,
                     meta=None,
                     names=('query', 'ref'),
                     stages=False):
    """``{"meta": {...}, "pairs": [{<names[0]>_path, ..., distance,
    variant}]}`` (with ``stages``: also ``stage`` and the evidence)."""
    rows = [{
        f'{names[0]}_path': escape_path(p.query_path),
        f'{names[1]}_path': escape_path(p.ref_path),
        'distance': p.distance,
        'variant': p.variant,
        **(_evidence(p) if stages else {})
    } for p in pairs]
    meta = {
        k: escape_path(v) if isinstance(v, str) else v
        for k, v in (meta or {}).items()
    }
    with atomic_write(out_file, encoding='utf-8') as f:
        json.dump({'meta': meta, 'pairs': rows}, f, indent=1)


def write_skipped_csv(skipped_by_set, out_file):
    """``skipped_by_set``: ``{set_name: [(path, reason), ...]}``."""
    with atomic_write(out_file, newline='', encoding='utf-8') as f:
        writer = csv.writer(f)
        writer.writerow(['set', 'path', 'reason'])
        for name, skipped in skipped_by_set.items():
            for path, reason in skipped:
                writer.writerow([name, escape_path(path), escape_path(reason)])


def _thumbnail(path, size):
    """An RGB thumbnail; a grey tile when the file cannot be shown (it is
    listed in ``skipped.csv`` with the reason)."""
    return thumbnail(path, size, fallback_color=(128, 128, 128))


def _html_text(value):
    return html.escape(escape_path(str(value)))


def _geometric_row(k, p, names):
    """A geometric pair: one picture, both images, matched region
    outlined, and the evidence."""
    from .geometric_report import draw_geometric_pair, geometric_label
    uri = image_data_uri(draw_geometric_pair(p))
    return (f'<tr><td>{k + 1}</td><td colspan="2"><img class="geo" '
            f'src="{uri}"><br>{html.escape(names[0])}: '
            f'{_html_text(p.query_path)}<br>{html.escape(names[1])}: '
            f'{_html_text(p.ref_path)}</td><td></td><td>geometric: '
            f'{html.escape(geometric_label(p))}<br>transform '
            f'{html.escape(json.dumps(p.transform))}</td></tr>')


def write_html_report(pairs,
                      out_file,
                      meta=None,
                      names=('query', 'ref'),
                      thumb_size=160,
                      max_pairs=1000):
    """A self-contained HTML page: summary, then one row per pair with both
    thumbnails (base64), paths, distance and variant."""
    meta = meta or {}
    shown = pairs[:max_pairs]
    rows = []
    for k, p in enumerate(shown):
        if getattr(p, 'stage', 'hash') == 'geometric':
            rows.append(_geometric_row(k, p, names))
            continue
        qa = image_data_uri(_thumbnail(p.query_path, thumb_size))
        ra = image_data_uri(_thumbnail(p.ref_path, thumb_size))
        rows.append(f'<tr><td>{k + 1}</td><td><img src="{qa}"><br>'
                    f'{_html_text(p.query_path)}</td><td><img src="{ra}"><br>'
                    f'{_html_text(p.ref_path)}</td><td>{p.distance}</td>'
                    f'<td>{p.variant}</td></tr>')
    summary = ''.join(f'<li><b>{_html_text(k)}</b>: '
                      f'{_html_text(v)}</li>' for k, v in meta.items())
    more = (f'<p>Showing {len(shown)} of {len(pairs)} pairs; all are in '
            'pairs.csv.</p>' if len(pairs) > len(shown) else '')
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Duplicate pairs</title>
<style>body{{font-family:sans-serif}} td{{vertical-align:top;padding:4px;
font-size:12px;border-bottom:1px solid #ccc}} img{{max-width:{thumb_size}px}}
img.geo{{max-width:none}}
</style></head><body>
<h1>Duplicate pairs ({len(pairs)})</h1><ul>{summary}</ul>{more}
<table><tr><th>#</th><th>{html.escape(names[0])}</th>
<th>{html.escape(names[1])}</th><th>Hamming distance</th><th>variant</th></tr>
{''.join(rows)}</table></body></html>
"""
    with atomic_write(out_file, encoding='utf-8') as f:
        f.write(page)


def write_contact_sheet(pairs,
                        out_file,
                        thumb_size=128,
                        max_pairs=200,
                        names=('query', 'ref')):
    """A PNG with one row per pair: both thumbnails and ``d=<distance>
    (<variant>)``. At most ``max_pairs`` rows (the header says so)."""
    shown = pairs[:max_pairs]
    label_w, head_h, pad = 170, 24, 4
    row_h = thumb_size + 2 * pad
    width = 2 * (thumb_size + 2 * pad) + label_w
    height = head_h + max(1, len(shown)) * row_h
    sheet = Image.new('RGB', (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    head = f'{names[0]} | {names[1]} | {len(pairs)} pairs'
    if len(pairs) > len(shown):
        head += f' (first {len(shown)})'
    draw.text((pad, pad), head, fill=(0, 0, 0))
    if not shown:
        draw.text((pad, head_h + pad),
                  'no pairs within the threshold',
                  fill=(0, 0, 0))
    for k, p in enumerate(shown):
        y = head_h + k * row_h + pad
        for col, path in enumerate((p.query_path, p.ref_path)):
            tile = _thumbnail(path, thumb_size)
            x = pad + col * (thumb_size + 2 * pad)
            sheet.paste(tile, (x + (thumb_size - tile.width) // 2, y +
                               (thumb_size - tile.height) // 2))
        x = 2 * (thumb_size + 2 * pad) + pad
        label = (f'd={p.distance} ({p.variant})' if p.distance is not None else
                 f'geometric: {p.inliers} inliers,\n'
                 f'overlap {p.overlap:.0%}')
        draw.text((x, y), label, fill=(200, 0, 0))
        first = 1 if p.distance is not None else 2  # label of 2 lines
        for row, path in enumerate((p.query_path, p.ref_path), first):
            draw.text((x, y + 16 * row),
                      escape_path(osp.basename(path))[:26],
                      fill=(0, 0, 0))
    image_format = Image.registered_extensions().get(
        osp.splitext(str(out_file))[1].lower(), 'PNG')
    with StagedFiles() as staged:
        sheet.save(staged.path(out_file), format=image_format)
    return np.asarray(sheet).shape


def write_leakage_outputs(out_dir,
                          pairs,
                          skipped_by_set,
                          meta,
                          exclude_paths,
                          exclude_root=None,
                          exclude_comments=(),
                          names=('query', 'ref'),
                          stages=False):
    """Write every file of :data:`LEAKAGE_OUTPUTS` into ``out_dir``, all or
    none: each is staged under a temporary name and the set is renamed into
    place only after the last one is written, so an exception (or a kill)
    part-way leaves the previous run's outputs as they were.

    Args:
        out_dir (str): Output folder (must exist).
        pairs (list[DuplicatePair]): The pairs found.
        skipped_by_set (dict): ``{set_name: [(path, reason), ...]}``.
        meta (dict): Run summary for the JSON and HTML files.
        exclude_paths (Iterable[str]): Images for ``exclude.txt``.
        exclude_root (str, optional): ``exclude.txt`` paths are relative
            to it. Defaults to None.
        exclude_comments (Iterable[str]): Header lines of ``exclude.txt``.
            Defaults to ().
        names (tuple[str, str]): Names of the two sets in column headers.
            Defaults to ('query', 'ref').
        stages (bool): Add the ``stage`` and evidence columns (a run with
            the geometric stage). Defaults to False.

    Returns:
        list[str]: The relative paths written to ``exclude.txt``.
    """
    with StagedFiles() as staged:
        tmp = {
            name: staged.path(osp.join(out_dir, name))
            for name in LEAKAGE_OUTPUTS
        }
        write_pairs_csv(pairs, tmp['pairs.csv'], names, stages)
        write_pairs_json(pairs, tmp['pairs.json'], meta, names, stages)
        write_html_report(pairs, tmp['report.html'], meta, names)
        write_contact_sheet(pairs, tmp['pairs.png'], names=names)
        write_skipped_csv(skipped_by_set, tmp['skipped.csv'])
        excluded = write_exclude_file(exclude_paths, tmp['exclude.txt'],
                                      exclude_root, exclude_comments)
    return excluded
