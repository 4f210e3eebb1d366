# Copyright (c) mmext contributors. All rights reserved.
"""Image + text -> ViLBERT's image-text matching score or a fine-tuned
classifier's prediction, optionally with per-layer features and co-attention
maps.

Neither ViLBERT release has an inference entry point (vilbert-multi-task
evaluates data sets only; the thesis code has none), and mmpretrain's
inferencers feed images without text. :class:`ViLBERTInferencer` runs a
config's test pipeline on (image, text) pairs with the training-time random
steps removed (MLM masking, masked views, masked regions).
"""
import os.path as osp

import numpy as np
import torch
from mmengine.dataset import Compose

from .base import MMExtInferencer

__all__ = ['ViLBERTInferencer', 'read_pairs_file']

#: pre-training-only transforms (random masking, the second view)
_TRAIN_ONLY = ('MaskRegions', 'RandomPatchMask', 'WeakStrongViews')


def _as_pair(item, i):
    if isinstance(item, dict):
        image = item.get('image', item.get('img', item.get('img_path')))
        text = item.get('text')
    elif isinstance(item, (tuple, list)) and len(item) == 2:
        image, text = item
    else:
        raise ValueError(
            f'ViLBERTInferencer: input {i} is a {type(item).__name__}; give '
            "(image, text) pairs or dicts with 'image' and 'text'")
    if not isinstance(text, str):
        raise ValueError(f'ViLBERTInferencer: input {i} has no text string '
                         f'(got {type(text).__name__})')
    if not isinstance(image, (str, np.ndarray)):
        raise ValueError(f'ViLBERTInferencer: input {i} has no image path or '
                         f'array (got {type(image).__name__})')
    return image, text


def read_pairs_file(path):
    """(image, text) rows of a tab-separated file, one pair a line.

    Relative image paths are taken from the file's folder; blank lines and
    lines starting with ``#`` are skipped.

    Raises:
        mmext.utils.fileio.InputFileError: A line without a tab, an empty
            text or a missing image (naming the file and line).
    """
    from mmext.utils.fileio import InputFileError, read_text_file
    root = osp.dirname(osp.abspath(path))
    pairs = []
    text = read_text_file(path, 'pairs file', max_bytes=64 << 20)
    for no, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith('#'):
            continue
        image, sep, caption = line.partition('\t')
        if not sep or not caption.strip() or not image.strip():
            raise InputFileError(
                f'{path}: line {no} is not "image<TAB>text"; write one '
                'image path, a tab and the text per line')
        image = osp.join(root, image.strip())
        if not osp.isfile(image):
            raise InputFileError(f'{path}: line {no} names image {image}, '
                                 'which does not exist')
        pairs.append((image, caption.strip()))
    if not pairs:
        raise InputFileError(f'{path}: no image<TAB>text line; add pairs')
    return pairs


class ViLBERTInferencer(MMExtInferencer):
    """Score (image, text) pairs with a ViLBERT or ViLBERTClassifier.

    Per pair the result holds ``image``, ``text`` and, for a pre-trained
    :class:`ViLBERT`, ``itm_score`` (probability that the text matches the
    image, ``None`` without an ITM head); for a :class:`ViLBERTClassifier`
    ``pred_score`` (list), ``pred_label`` (int, or a list for multi-label)
    and ``pred_class`` (names from the checkpoint's / data set's
    ``classes``). ``return_layers=True`` adds ``features`` (name ->
    array, as :func:`mmext.analysis.flatten_layer_outputs` names them:
    ``text.<i>`` (T, D) cut to the real tokens, ``vision.<j>``,
    ``coattn.<k>.text`` ...), ``return_attention=True`` adds
    ``coattention`` (``<k>.text_to_vision`` (heads, T, 1 + N) and
    ``<k>.vision_to_text``). Both come from the same forward as the scores.

    Region-feature configs read ``<feature_dir>/<image stem>.npz`` of the
    config's ``LoadRegionFeatures``, so their images must be paths.

    Args:
        model (str | Config | BaseModel): Config or built model.
        pretrained (str, optional): Checkpoint. Defaults to None.
        device (str, optional): Defaults to None (CPU).
        cfg_options (dict, optional): Config overrides.

    Example:
        >>> inferencer = ViLBERTInferencer(CONFIG, CKPT)  # doctest: +SKIP
        >>> pair = ('dog.jpg', 'a dog on the grass')
        >>> inferencer(pair)[0]['itm_score']  # doctest: +SKIP
        0.93
    """

    forward_kwargs = {'return_layers', 'return_attention'}

    def __call__(self,
                 inputs,
                 texts=None,
                 return_datasamples=False,
                 batch_size=1,
                 **kwargs):
        """Run on pairs.

        Args:
            inputs: A pair (an ``(image, text)`` tuple or a dict with
                ``image`` and ``text``), a list of pairs, or images (path
                / array, or a list) with ``texts``.
            texts (str | list[str], optional): Texts of ``inputs`` images
                (one string: the same text for every image).
            return_datasamples (bool): Return DataSamples. Defaults to False.
            batch_size (int): Pairs per forward. Defaults to 1.
            return_layers (bool): Add ``features``.
            return_attention (bool): Add ``coattention``.

        Returns:
            list[dict] | list[DataSample]
        """
        if texts is not None:
            images = inputs if isinstance(inputs, (list, tuple)) else [inputs]
            texts = [texts] * len(images) if isinstance(texts,
                                                        str) else list(texts)
            if len(images) != len(texts):
                raise ValueError(f'ViLBERTInferencer: {len(images)} images '
                                 f'but {len(texts)} texts')
            inputs = list(zip(images, texts))
        elif isinstance(inputs, dict) or (isinstance(inputs, tuple)
                                          and len(inputs) == 2
                                          and isinstance(inputs[1], str)):
            inputs = [inputs]  # one pair
        return super().__call__(inputs, return_datasamples, batch_size,
                                **kwargs)

    def _init_pipeline(self, cfg):
        from mmext.registry import TRANSFORMS
        steps, self._loader = [], None
        for t in cfg.test_dataloader.dataset.pipeline:
            t = dict(t)
            if t['type'] in _TRAIN_ONLY:
                continue
            if t['type'] == 'LoadImageFromFile':
                self._loader = TRANSFORMS.build(t)
                continue
            if t['type'] == 'TokenizeCaption':
                t['mlm_prob'] = 0  # no random [MASK] at inference
            steps.append(TRANSFORMS.build(t))
        return Compose(steps)

    def _load(self, pair):
        image, text = pair
        results = dict(text=text)
        if isinstance(image, str):
            results['img_path'] = image
            if self._loader is not None:
                results = self._loader(results)
                if results is None:
                    raise ValueError(f'ViLBERTInferencer: cannot read image '
                                     f'{image}')
        elif self._loader is None:
            raise ValueError('ViLBERTInferencer: this config reads region '
                             'features by image name; give image paths, '
                             'not arrays')
        else:
            results.update(
                img=image,
                img_shape=image.shape[:2],
                ori_shape=image.shape[:2])
        return self.pipeline(results)

    def preprocess(self, inputs, batch_size=1):
        from mmext.datasets.transforms.vilbert import vilbert_collate
        pairs = (_as_pair(item, i) for i, item in enumerate(inputs))
        chunks = self._get_chunk_data(map(self._load, pairs), batch_size)
        for chunk in chunks:
            yield vilbert_collate(chunk, itm_prob=0)

    @property
    def is_classifier(self):
        return hasattr(self.model, 'predict_from_logits')

    @torch.no_grad()
    def forward(self, data, return_layers=False, return_attention=False):
        data = self.model.data_preprocessor(data, False)
        inputs, samples = data['inputs'], data['data_samples']
        vilbert = self.model.vilbert if self.is_classifier else self.model
        layers = return_layers or return_attention
        feats = vilbert.extract_feat(inputs, return_layers=layers)
        if self.is_classifier:
            samples = self.model.predict_from_logits(
                self.model.head(feats['fused']), samples)
        else:
            itm = getattr(vilbert, 'itm_head', None)
            probs = (
                itm(feats['fused']).float().softmax(-1)[:, 1]
                if itm is not None else [None] * len(samples))
            for sample, p in zip(samples, probs):
                sample.set_field(
                    None if p is None else float(p),
                    'itm_score',
                    field_type='metainfo')
        if layers:
            self._attach_layers(feats, inputs, samples, return_layers,
                                return_attention)
        return samples

    @staticmethod
    def _attach_layers(feats, inputs, samples, features, attention):
        from mmext.analysis.representations import flatten_layer_outputs
        t_len = inputs['attention_mask'].sum(1).tolist()
        flat = flatten_layer_outputs(feats) if features else {}
        maps = {}
        if attention:
            for k, block in enumerate(feats['coattn_layers']):
                for name, m in block['attention'].items():
                    maps[f'{k}.{name}'] = m
        for i, sample in enumerate(samples):
            n = int(t_len[i])
            out = {}
            for name, t in flat.items():
                t = t[i].float().cpu()
                if name.startswith(('text', 'embeddings.text')) or \
                        name.endswith('.text'):
                    t = t[:n]
                out[name] = t.numpy()
            sample.set_field(out, 'features', field_type='metainfo')
            co = {}
            for name, m in maps.items():
                m = m[i].float().cpu()  # heads, nq, nk
                m = m[:, :n] if name.endswith(
                    'text_to_vision') else m[:, :, :n]
                co[name] = m.numpy()
            sample.set_field(co, 'coattention', field_type='metainfo')

    def visualize(self, inputs, preds, show=False, **kwargs):
        return super().visualize(inputs, preds, show)

    def postprocess(self, preds, visualization, return_datasamples=False):
        if return_datasamples:
            return preds
        classes = self.dataset_meta.get('classes')
        results = []
        for sample in preds:
            image = sample.get('img_path')
            res = dict(
                image=image if image is not None else '<array>',
                text=sample.get('text'))
            if 'pred_score' in sample:
                res.update(_class_result(sample, classes, self.model.task))
            else:
                res['itm_score'] = sample.get('itm_score')
            for key in ('features', 'coattention'):
                if key in sample:
                    res[key] = sample.get(key)
            results.append(res)
        return results


def _class_result(sample, classes, task):
    """pred_score / pred_label / pred_class of one classifier prediction:
    a label and a name (binary, multiclass) or lists (multilabel)."""
    scores = sample.pred_score.float().cpu().tolist()
    labels = sample.pred_label.cpu().flatten().tolist()

    def name(i):
        return classes[i] if classes is not None and i < len(classes) else str(
            i)

    if task == 'multilabel':
        return dict(
            pred_score=scores,
            pred_label=labels,
            pred_class=[name(i) for i in labels])
    return dict(
        pred_score=scores, pred_label=labels[0], pred_class=name(labels[0]))
