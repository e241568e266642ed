"""WIDER FACE: the official-layout dataset, the official AP protocol and the metric."""
import os.path as osp

import numpy as np
import pytest
import torch
from mmdet.registry import DATASETS, METRICS
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData
from scipy.io import loadmat

from img2pose_mm.datasets.wider_face import WIDERFaceOfficialDataset, parse_wider_annotations
from img2pose_mm.evaluation import WIDERFaceMetric
from img2pose_mm.evaluation.functional import (
    WIDERImageGT,
    evaluate_wider,
    load_wider_ground_truth,
    normalize_scores,
    read_wider_submission,
    sort_by_score,
    wider_box_overlaps,
    wider_image_eval,
    wider_image_pr_info,
    wider_pr_curve,
    write_wider_submission,
)

from .formats import write_wider

IMAGES = [
    dict(event='0--Parade', name='0_Parade_marchingband_1_20',
         boxes=[[10, 20, 30, 40], [100, 100, 12, 14]], attrs=[[0, 0, 0, 0, 0, 0],
                                                              [2, 0, 0, 1, 1, 0]]),
    dict(event='0--Parade', name='0_Parade_Parade_0_12', boxes=[]),
    dict(event='1--Handshaking', name='1_Handshaking_Handshaking_1_35',
         boxes=[[5, 5, 50, 60]]),
]


def gt_image(event, name, boxes, keep=None, setting='all'):
    boxes = np.asarray(boxes, dtype=float).reshape(-1, 4)
    keep = np.ones(len(boxes), bool) if keep is None else np.asarray(keep, bool)
    return WIDERImageGT(event, name, boxes, {setting: keep})


def dets(*rows):
    return np.asarray(rows, dtype=float).reshape(-1, 5)


# ----------------------------------------------------------------------------- formats
def test_dataset_reads_official_layout(tmp_path):
    txt, _ = write_wider(str(tmp_path), IMAGES)
    ds = WIDERFaceOfficialDataset(data_root=str(tmp_path),
                                  ann_file='wider_face_split/wider_face_val_bbx_gt.txt',
                                  data_prefix=dict(img='WIDER_val/images/'), test_mode=True)
    assert len(ds) == 3 and ds.metainfo['classes'] == ('face',)
    first = ds.get_data_info(0)
    assert first['event'] == '0--Parade' and first['name'] == '0_Parade_marchingband_1_20'
    assert first['img_id'] == '0--Parade/0_Parade_marchingband_1_20'
    assert first['img_path'] == osp.join(str(tmp_path), 'WIDER_val/images',
                                         '0--Parade/0_Parade_marchingband_1_20.jpg')
    assert [i['bbox'] for i in first['instances']] == [[10, 20, 40, 60], [100, 100, 112, 114]]
    assert all(i['bbox_label'] == 0 and i['ignore_flag'] == 0 for i in first['instances'])
    assert 'poses' not in first          # no poses: LoadFacePoseAnnotations marks them invalid
    assert first['instances'][1]['wider_attributes'] == dict(
        blur=2, expression=0, illumination=0, invalid=1, occlusion=1, pose=0)
    assert ds.get_data_info(1)['instances'] == []          # the count-0 image + dummy row
    assert len(ds.get_data_info(2)['instances']) == 1
    # registered, and "invalid" faces can be marked ignored
    ds2 = DATASETS.build(dict(type='WIDERFaceOfficialDataset', ann_file=txt,
                              invalid_as_ignored=True, test_mode=True))
    assert [i['ignore_flag'] for i in ds2.get_data_info(0)['instances']] == [0, 1]


def test_dataset_filter_empty_and_test_filelist(tmp_path):
    txt, _ = write_wider(str(tmp_path), IMAGES)
    train = WIDERFaceOfficialDataset(ann_file=txt, filter_cfg=dict(filter_empty_gt=True))
    assert len(train) == 2
    names = tmp_path / 'wider_face_test_filelist.txt'
    names.write_text('0--Parade/0_Parade_marchingband_1_737.jpg\n'
                     '0--Parade/0_Parade_marchingband_1_222.jpg\n')
    test = WIDERFaceOfficialDataset(ann_file=str(names), test_mode=True)
    assert [d['name'] for d in test] == ['0_Parade_marchingband_1_737',
                                         '0_Parade_marchingband_1_222']


@pytest.mark.parametrize('text, message', [
    ('0--Parade/a.jpg\n2\n1 2 3 4 0 0 0 0 0 0\n', 'ends early'),
    ('0--Parade/a.jpg\n1\n1 2 x 4 0 0 0 0 0 0\n', ':3: not numbers'),
    ('0--Parade/a.jpg\n1\n1 2 3\n', ':3: expected'),
    ('0--Parade/a.jpg\n1\n1 2 3 4 0 0 0 0 0 0\n0--Parade/b.jpg\nthree\n', ':5: expected the face'),
])
def test_bad_annotation_file_names_file_and_line(tmp_path, text, message):
    path = tmp_path / 'wider_face_val_bbx_gt.txt'
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as err:
        parse_wider_annotations(str(path))
    assert str(path) in str(err.value)


def test_mat_files_load_with_official_nesting(tmp_path):
    _, gt_dir = write_wider(str(tmp_path), IMAGES, settings=dict(
        easy=[[0], [], [0]], medium=[[0, 1], [], [0]], hard=[[0, 1], [], [0]]))
    raw = loadmat(osp.join(gt_dir, 'wider_face_val.mat'))
    # the official nesting: cells of cells of char arrays / double matrices
    assert raw['event_list'].shape == (2, 1) and raw['event_list'].dtype == object
    assert str(raw['event_list'][1][0][0]) == '1--Handshaking'
    assert str(raw['file_list'][0][0][1][0][0]) == '0_Parade_Parade_0_12'
    np.testing.assert_array_equal(raw['face_bbx_list'][0][0][0][0][1], [100, 100, 12, 14])

    gt = load_wider_ground_truth(gt_dir)
    assert [(g.event, g.name) for g in gt] == [(i['event'], i['name']) for i in IMAGES]
    np.testing.assert_array_equal(gt[0].boxes, IMAGES[0]['boxes'])
    assert gt[1].boxes.shape == (0, 4)
    np.testing.assert_array_equal(gt[0].keep['easy'], [True, False])
    np.testing.assert_array_equal(gt[0].keep['hard'], [True, True])
    assert gt[1].keep['easy'].shape == (0,)


def test_mat_errors_name_the_file(tmp_path):
    _, gt_dir = write_wider(str(tmp_path), IMAGES)
    with pytest.raises(FileNotFoundError, match='wider_face_val.mat'):
        load_wider_ground_truth(str(tmp_path))
    from scipy.io import savemat
    bad = osp.join(gt_dir, 'wider_hard_val.mat')
    savemat(bad, {'gt_list': np.zeros((2, 1), dtype=object) + 0})   # numbers, not cells
    with pytest.raises(ValueError, match='wider_hard_val.mat'):
        load_wider_ground_truth(gt_dir)
    savemat(bad, {'other': 1})
    with pytest.raises(ValueError, match=r'wider_hard_val.mat: missing variables \[.gt_list.\]'):
        load_wider_ground_truth(gt_dir)


def test_submission_roundtrip(tmp_path):
    d = dets([10, 20, 40, 60, 0.9], [1.5, 2, 3.5, 8, 0.25])
    path = write_wider_submission(str(tmp_path), '0--Parade', 'img_1', d, 'img_1.jpg')
    assert path == osp.join(str(tmp_path), '0--Parade', 'img_1.txt')
    lines = open(path).read().splitlines()
    assert lines[0] == 'img_1.jpg' and lines[1] == '2'
    assert [float(v) for v in lines[2].split()] == [10, 20, 30, 40, 0.9]
    write_wider_submission(str(tmp_path), '0--Parade', 'img_2', np.zeros((0, 5)))
    preds = read_wider_submission(str(tmp_path))
    np.testing.assert_allclose(preds[('0--Parade', 'img_1')],
                               [[10, 20, 30, 40, 0.9], [1.5, 2, 2, 6, 0.25]])
    assert preds[('0--Parade', 'img_2')].shape == (0, 5)
    (tmp_path / '0--Parade' / 'img_3.txt').write_text('img_3.jpg\n2\n1 2 3 4 0.5\n')
    with pytest.raises(ValueError, match='img_3.txt: announces 2 faces'):
        read_wider_submission(str(tmp_path))


# ----------------------------------------------------------------------------- protocol
def test_box_overlaps_use_inclusive_pixels():
    iou = wider_box_overlaps([[0, 0, 9, 9]], [[0, 0, 9, 9], [5, 0, 14, 9], [10, 0, 19, 9]])
    np.testing.assert_allclose(iou, [[1.0, 50 / 150, 0.0]])


def test_perfect_predictions_give_ap_one():
    gt = [gt_image('e', 'a', [[0, 0, 20, 20], [50, 50, 30, 30]]),
          gt_image('e', 'b', [[10, 10, 40, 40]])]
    preds = {('e', 'a'): dets([0, 0, 20, 20, 0.9], [50, 50, 30, 30, 0.4]),
             ('e', 'b'): dets([10, 10, 40, 40, 0.7])}
    assert evaluate_wider(preds, gt, ('all',)) == {'all': pytest.approx(1.0)}


def test_all_miss_gives_ap_zero():
    gt = [gt_image('e', 'a', [[0, 0, 20, 20], [50, 50, 30, 30]])]
    preds = {('e', 'a'): dets([200, 200, 20, 20, 0.9], [300, 10, 30, 30, 0.4])}
    assert evaluate_wider(preds, gt, ('all',))['all'] == 0.0
    assert evaluate_wider({}, gt, ('all',))['all'] == 0.0      # no predictions at all


def two_threshold_case():
    """Faces g1, g2; a TP on g1 (score 1), a FP (0.5), a TP on g2 (0)."""
    gt = [gt_image('e', 'a', [[0, 0, 10, 10], [50, 50, 10, 10]])]
    preds = {('e', 'a'): dets([0, 0, 10, 10, 1.0], [100, 100, 10, 10, 0.5],
                              [50, 50, 10, 10, 0.0])}
    return gt, preds


def test_two_threshold_case_by_hand():
    gt, preds = two_threshold_case()
    precision, recall, count = wider_pr_curve(normalize_scores(preds), gt, 'all')
    assert count == 2
    thresholds = 1 - np.arange(1, 1001) / 1000
    # thresholds above 0.5: the TP alone; 0 < thr <= 0.5: TP + FP; thr 0: everything
    hi, mid, zero = thresholds > 0.5, (thresholds > 0) & (thresholds <= 0.5), thresholds == 0
    np.testing.assert_allclose(precision[hi], 1.0)
    np.testing.assert_allclose(recall[hi], 0.5)
    np.testing.assert_allclose(precision[mid], 0.5)
    np.testing.assert_allclose(recall[mid], 0.5)
    np.testing.assert_allclose(precision[zero], 2 / 3)
    np.testing.assert_allclose(recall[zero], 1.0)
    # area: recall 0 -> 0.5 at envelope precision 1, 0.5 -> 1 at 2/3
    assert evaluate_wider(preds, gt, ('all',))['all'] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)


def test_scores_are_normalised_over_the_whole_set():
    gt, preds = two_threshold_case()
    scaled = {k: np.concatenate([v[:, :4], v[:, 4:] * 0.6 + 0.3], 1) for k, v in preds.items()}
    np.testing.assert_allclose(normalize_scores(scaled)[('e', 'a')][:, 4], [1.0, 0.5, 0.0])
    assert evaluate_wider(scaled, gt, ('all',))['all'] == pytest.approx(5 / 6)



def test_normalisation_is_matlabs_norm_score():
    """norm_score.m: the running max starts at realmin('single'), the min at
    realmax('single'), and only images of the ground-truth list are read. Scores all >= 1
    and a prediction for an image outside the list, by hand: the true positive (2.0)
    becomes 1 and the false positive (1.999) 0, so at every threshold above 0 the true
    positive stands alone: AP 1. (Starting the min at 1 would give 1.0 and 0.999, both
    counted from threshold 0.999 on: AP 0.5; counting the outside image's 1000 would
    squash both into the bucket of threshold 0: AP 0.5 too.)"""
    gt = [gt_image('e', 'a', [[0, 0, 10, 10]])]
    preds = {('e', 'a'): dets([0, 0, 10, 10, 2.0], [100, 100, 10, 10, 1.999]),
             ('e', 'outside'): dets([0, 0, 5, 5, 1000.0])}
    normalised = normalize_scores(preds, [('e', 'a')])
    assert list(normalised) == [('e', 'a')]
    np.testing.assert_allclose(normalised[('e', 'a')][:, 4], [1.0, 0.0], atol=1e-9)
    assert evaluate_wider(preds, gt, ('all',))['all'] == pytest.approx(1.0)


def test_ignored_face_neither_helps_nor_hurts():
    gt, preds = two_threshold_case()
    base = evaluate_wider(preds, gt, ('all',))['all']
    # an ignored face with a matching prediction (score inside the range: same
    # normalisation), and one without
    ignored = [gt_image('e', 'a', [[0, 0, 10, 10], [50, 50, 10, 10], [200, 0, 20, 20],
                                   [300, 0, 20, 20]], keep=[True, True, False, False])]
    with_pred = {('e', 'a'): np.concatenate([preds[('e', 'a')], dets([201, 0, 20, 20, 0.8])])}
    assert evaluate_wider(with_pred, ignored, ('all',))['all'] == pytest.approx(base)
    assert evaluate_wider(preds, ignored, ('all',))['all'] == pytest.approx(base)
    # the same prediction on a counted face would have counted
    counted = [gt_image('e', 'a', ignored[0].boxes, keep=[True, True, True, False])]
    assert evaluate_wider(with_pred, counted, ('all',))['all'] != pytest.approx(base)


def test_duplicate_detection_is_a_false_positive():
    gt = [gt_image('e', 'a', [[0, 0, 10, 10]])]
    one = {('e', 'a'): dets([0, 0, 10, 10, 1.0], [0, 0, 10, 10, 0.0])}
    precision, recall, _ = wider_pr_curve(normalize_scores(one), gt, 'all')
    assert precision[-1] == 0.5 and recall[-1] == 1.0     # the duplicate is a proposal
    # precision 1 until the duplicate enters at threshold 0 (recall already 1)
    assert evaluate_wider(one, gt, ('all',))['all'] == pytest.approx(1.0)
    two = {('e', 'a'): dets([0, 0, 10, 10, 0.0], [0, 0, 10, 10, 1.0])}  # order by score
    assert evaluate_wider(two, gt, ('all',))['all'] == pytest.approx(1.0)


def reference_image_eval(pred, gt, keep, iou_thr=0.5):
    """The protocol written as its sequential loop (an oracle for the vectorised code)."""
    pred_recall = np.zeros(len(pred))
    recall = np.zeros(len(gt))
    proposal = np.ones(len(pred))
    p = pred.copy()
    p[:, 2:4] += p[:, :2]
    g = gt.copy()
    g[:, 2:4] += g[:, :2]
    for h in range(len(p)):
        best, best_iou = 0, -1.0
        for k in range(len(g)):
            iw = min(p[h, 2], g[k, 2]) - max(p[h, 0], g[k, 0]) + 1
            ih = min(p[h, 3], g[k, 3]) - max(p[h, 1], g[k, 1]) + 1
            iou = 0.0
            if iw > 0 and ih > 0:
                area = ((p[h, 2] - p[h, 0] + 1) * (p[h, 3] - p[h, 1] + 1)
                        + (g[k, 2] - g[k, 0] + 1) * (g[k, 3] - g[k, 1] + 1) - iw * ih)
                iou = iw * ih / area
            if iou > best_iou:
                best, best_iou = k, iou
        if best_iou >= iou_thr:
            if not keep[best]:
                recall[best] = -1
                proposal[h] = -1
            elif recall[best] == 0:
                recall[best] = 1
        pred_recall[h] = (recall == 1).sum()
    info = np.zeros((1000, 2))
    for t in range(1000):
        thr = 1 - (t + 1) / 1000
        idx = np.flatnonzero(p[:, 4] >= thr)
        if len(idx):
            r = idx[-1]
            info[t] = [(proposal[:r + 1] == 1).sum(), pred_recall[r]]
    return info


def test_vectorised_image_eval_matches_the_sequential_protocol(rng):
    for trial in range(30):
        num_gt, num_pred = rng.integers(1, 8), rng.integers(1, 15)
        gt = np.concatenate([rng.uniform(0, 60, (num_gt, 2)),
                             rng.uniform(4, 30, (num_gt, 2))], 1).round()
        jitter = gt[rng.integers(0, num_gt, num_pred)] + rng.normal(0, 3, (num_pred, 4))
        pred = np.concatenate([jitter.round(), rng.uniform(0, 1, (num_pred, 1))], 1)
        pred = sort_by_score(pred)
        keep = rng.uniform(size=num_gt) > 0.3
        pred_recall, proposal = wider_image_eval(pred, gt, keep)
        ours = wider_image_pr_info(pred[:, 4], proposal, pred_recall)
        np.testing.assert_array_equal(ours, reference_image_eval(pred, gt, keep),
                                      err_msg=f'trial {trial}')


# ----------------------------------------------------------------------------- metric
def sample(event, name, boxes_xyxy, scores, root='/data/WIDER_val/images'):
    ds = DetDataSample(metainfo=dict(img_path=f'{root}/{event}/{name}.jpg',
                                     ori_shape=(300, 400)))
    ds.pred_instances = InstanceData(bboxes=torch.tensor(boxes_xyxy, dtype=torch.float32),
                                     scores=torch.tensor(scores, dtype=torch.float32),
                                     labels=torch.zeros(len(scores), dtype=torch.long))
    return ds.to_dict()


def test_metric_with_official_mat_files(tmp_path):
    _, gt_dir = write_wider(str(tmp_path), IMAGES, settings=dict(
        easy=[[0], [], [0]], medium=[[0, 1], [], [0]], hard=[[0, 1], [], [0]]))
    out_dir = str(tmp_path / 'pred')
    metric = METRICS.build(dict(type='WIDERFaceMetric', gt_dir=gt_dir, outfile_dir=out_dir))
    metric.dataset_meta = dict(classes=('face',))
    # exact boxes for face 0 of image 0 and the face of image 2; face 1 of image 0 missed
    metric.process({}, [sample('0--Parade', '0_Parade_marchingband_1_20',
                               [[10, 20, 40, 60]], [0.9]),
                        sample('1--Handshaking', '1_Handshaking_Handshaking_1_35',
                               [[5, 5, 55, 65]], [0.5])])
    results = metric.evaluate(2)
    # easy: both counted faces found -> 1; medium/hard: 2 of 3 faces, precision 1 -> 2/3
    assert results['wider_face/easy'] == pytest.approx(1.0)
    assert results['wider_face/medium'] == pytest.approx(2 / 3)
    assert results['wider_face/hard'] == pytest.approx(2 / 3)
    # the submission layout round-trips into the same numbers
    preds = read_wider_submission(out_dir)
    assert set(preds) == {('0--Parade', '0_Parade_marchingband_1_20'),
                          ('1--Handshaking', '1_Handshaking_Handshaking_1_35')}
    gt = load_wider_ground_truth(gt_dir)
    assert evaluate_wider(preds, gt)['medium'] == pytest.approx(2 / 3)


def test_metric_without_mat_uses_sample_faces(tmp_path):
    metric = WIDERFaceMetric()
    metric.dataset_meta = dict(classes=('face',))
    s = sample('e', 'a', [[0, 0, 10, 10], [100, 100, 110, 110]], [0.9, 0.8])
    # raw instances (packed with the `instances` meta key): the ignored face's
    # detection neither helps nor hurts
    s['instances'] = [dict(bbox=[0, 0, 10, 10], ignore_flag=0),
                      dict(bbox=[100, 100, 110, 110], ignore_flag=1)]
    s2 = sample('e', 'b', [[0, 0, 10, 10]], [0.7])
    s2['gt_instances'] = dict(bboxes=torch.tensor([[0., 0, 10, 10], [30, 30, 40, 40]]))
    metric.process({}, [s, s2])
    assert metric.evaluate(2) == {'wider_face/all': pytest.approx(2 / 3)}
    with pytest.raises(ValueError, match="single setting 'all'"):
        WIDERFaceMetric(settings=('easy',))


def test_metric_format_only_writes_submission(tmp_path):
    metric = WIDERFaceMetric(gt_dir=str(tmp_path / 'absent'), format_only=True,
                             outfile_dir=str(tmp_path / 'sub'))
    metric.process({}, [sample('0--Parade', 'x', [[1, 2, 3, 4]], [0.5])])
    assert metric.evaluate(1) == {}
    assert (tmp_path / 'sub' / '0--Parade' / 'x.txt').read_text().splitlines()[:2] == \
        ['x.jpg', '1']
