# Copyright (c) mmext contributors. All rights reserved.
import json
import re

import pytest

from mmext.datasets import AnnotationError
from mmext.models.multimodal.r2gen.tokenizer import (R2GenTokenizer,
                                                     clean_report)


def _reference_iu(report):
    """R2Gen's ``clean_report_iu_xray``, re-typed from its published
    behaviour as an independent reference (same regex string)."""
    text = report
    for _ in range(3):
        text = text.replace('..', '.')
    text = text.replace('1. ', '')
    for k in '2345':
        text = text.replace(f'. {k}. ', '. ')
    for k in '2345':
        text = text.replace(f' {k}. ', '. ')
    sents = text.strip().lower().split('. ')
    out = []
    for s in sents:
        s = s.replace('"', '').replace('/', '').replace('\\', '')
        s = s.replace("'", '').strip().lower()
        out.append(re.sub('[.,?;*!%^&_+():-\\[\\]{}]', '', s))
    return ' . '.join(out) + ' .'


TRICKY = [
    'The heart is normal in size. The lungs are clear.',
    '1. No acute cardiopulmonary abnormality. 2. Stable T11 XXXX.',
    'Heart size < 50% @ PA; x-ray "stable" (no change)... 3. Done.',
    'Nodule measures 1.5 cm [see prior] {old}!  Effusion?',
    "Left/right lung bases\\clear. Patient's 21. item. ",
    'A. . B.',
]


@pytest.mark.parametrize('report', TRICKY)
def test_r2gen_mode_matches_reference_cleaning(report):
    assert clean_report(report, 'iu_xray', 'r2gen') == _reference_iu(report)


def test_r2gen_regex_quirk_golden_and_fixed_mode():
    report = 'Heart size < 50% @ PA; x-ray "stable" (no change)... 3. Done.'
    # golden output of R2Gen's cleaner: '<', '@', ';' deleted by the
    # ':-\[' range, '-' kept, '%', '(', ')' deleted
    assert clean_report(report, mode='r2gen') == \
        'heart size  50  pa x-ray stable no change . done .'
    fixed = clean_report(report, mode='fixed')
    assert '<' in fixed and '@' in fixed and 'xray' in fixed
    assert fixed.endswith(' .') and '  ' not in fixed
    # r2gen keeps empty sentences ('sent != []' is always true); fixed not
    assert clean_report('A. . B.', mode='r2gen') == 'a .  . b .'
    assert clean_report('A. . B.', mode='fixed') == 'a . b .'
    # fixed keeps decimals, r2gen glues them
    assert '1.5' in clean_report('Nodule of 1.5 cm.', mode='fixed')
    assert '15 cm' in clean_report('Nodule of 1.5 cm.', mode='r2gen')


def test_mimic_cleaning_joins_lines_and_placeholders():
    report = 'Compared to ___.\n The heart  is\n normal.. No effusion.'
    assert clean_report(report, 'mimic_cxr') == \
        'compared to  . the heart is normal . no effusion .'


def _write_ann(path, train, val=('zzz unseen words .', )):
    ann = dict(
        train=[
            dict(id=f't{i}', report=r, image_path=[f't{i}/0.png'])
            for i, r in enumerate(train)
        ],
        val=[
            dict(id=f'v{i}', report=r, image_path=[f'v{i}/0.png'])
            for i, r in enumerate(val)
        ],
        test=[])
    path.write_text(json.dumps(ann))
    return path


def test_vocabulary_threshold_sorted_ids_from_one(tmp_path):
    ann = _write_ann(tmp_path / 'annotation.json', [
        'Heart normal. Lungs clear.', 'Heart normal. Lungs clear.',
        'Heart enlarged. Lungs clear.'
    ])
    # counts: heart 3, lungs 3, clear 3, '.' 6, normal 2, enlarged 1
    tok = R2GenTokenizer(ann_file=str(ann), threshold=3)
    assert tok.vocab == ['.', '<unk>', 'clear', 'heart', 'lungs']
    assert tok.token2idx == {
        '.': 1,
        '<unk>': 2,
        'clear': 3,
        'heart': 4,
        'lungs': 5
    }
    assert tok.vocab_size == 5
    tok2 = R2GenTokenizer(ann_file=str(ann), threshold=2)
    assert 'normal' in tok2.vocab and 'enlarged' not in tok2.vocab
    assert 'zzz' not in tok2.vocab  # val reports never count
    # built vocabularies are cached per file state: an edit is seen
    _write_ann(ann, ['Heart normal.'] * 3)
    assert R2GenTokenizer(
        ann_file=str(ann),
        threshold=3).vocab == ['.', '<unk>', 'heart', 'normal']


def test_encode_decode_roundtrip_and_unknown():
    tok = R2GenTokenizer(vocab=['.', '<unk>', 'clear', 'heart', 'lungs'])
    assert tok.encode('Lungs clear. Heart huge.') == [0, 5, 3, 1, 4, 2, 1, 0]
    assert tok.decode([5, 3, 1, 0, 4, 4]) == 'lungs clear .'
    assert tok.batch_decode([[4, 0], [2, 1]]) == ['heart', '<unk> .']
    assert tok('Lungs.') == tok.encode('Lungs.')


def test_tokenizer_errors(tmp_path):
    with pytest.raises(ValueError, match='clean_mode'):
        R2GenTokenizer(vocab=['<unk>'], clean_mode='strict')
    with pytest.raises(ValueError, match='vocab.*ann_file'):
        R2GenTokenizer()
    with pytest.raises(ValueError, match='no <unk>'):
        R2GenTokenizer(vocab=['a', 'b'])
    bad = tmp_path / 'a.json'
    bad.write_text(json.dumps(dict(test=[])))
    with pytest.raises(AnnotationError, match="has no split 'train'"):
        R2GenTokenizer(ann_file=str(bad))
    bad.write_text(
        json.dumps(
            dict(train=[dict(id='s1', report=None, image_path=['s1/0.png'])])))
    with pytest.raises(AnnotationError, match='s1'):
        R2GenTokenizer(ann_file=str(bad))
