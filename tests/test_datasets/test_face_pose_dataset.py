"""FacePoseLMDBDataset and FacePoseJSONDataset."""
import json
import shutil

import lmdb
import numpy as np
import pytest
import torch
from mmdet.registry import DATASETS
from mmengine.dataset import pseudo_collate
from torch.utils.data import DataLoader

from img2pose_mm.datasets.lmdb_converter import convert
from img2pose_mm.datasets.lmdb_record import decode_record, encode_record
from img2pose_mm.structures import FacePoses, rotation_angle_between

TRAIN_PIPELINE = [
    dict(type='LoadFacePoseImage'),
    dict(type='LoadFacePoseAnnotations'),
    dict(type='BlackOutFacesWithoutPose'),
    dict(type='PoseRandomFlip', prob=0.5),
    dict(type='PoseRandomCrop', scale_range=(0.7, 1.0)),
    dict(type='PoseMultiScaleResize', min_size=(96, 112, 128), max_size=200),
    dict(type='RandomContrast', prob=0.5),
    dict(type='RandomNoise', prob=0.2),
    dict(type='PoseToBBox'),
    dict(type='PackFacePoseInputs'),
]


@pytest.fixture
def lmdb_path(synthetic_set, tmp_path):
    json_path, truth = synthetic_set
    summary = convert(json_path, tmp_path / 'out', 'train', train=True, progress=False,
                      log=lambda m: None, labelling='image', keep_images_without_pose=True)
    return summary['lmdb'], truth


def build(ann_file, pipeline=(), **kwargs):
    return DATASETS.build(dict(type='FacePoseLMDBDataset', ann_file=str(ann_file),
                               pipeline=list(pipeline), **kwargs))


def test_data_info(lmdb_path):
    path, truth = lmdb_path
    ds = build(path)
    assert ds.metainfo['classes'] == ('face',)
    assert ds.metainfo['palette'] == [(0, 255, 0)]
    assert len(ds) == len(truth)
    for idx, line in enumerate(sorted(truth)):
        info = ds.get_data_info(idx)
        t = truth[line]
        assert info['img_id'] == info['lmdb_key'] == f'{line:08d}'
        assert info['source_line'] == line
        assert (info['height'], info['width']) == t['shape']
        assert info['img_path'] == str(t['image'])
        assert len(info['instances']) == len(t['poses']) == len(info['poses'])
        poses = info['poses']
        assert isinstance(poses, FacePoses) and poses.img_shape == t['shape']
        assert poses.valid.tolist() == t['valid'].tolist()
        for k, (inst, valid, pose, box) in enumerate(zip(info['instances'], t['valid'],
                                                         t['poses'], t['boxes'])):
            assert inst['bbox_label'] == 0
            assert inst['ignore_flag'] == int(not valid)
            h, w = t['shape']          # boxes are clipped to the image
            np.testing.assert_allclose(inst['bbox'], box[:4].clip(0, [w, h, w, h]), rtol=1e-6)
            if valid:
                angle = rotation_angle_between(poses.tensor[k:k + 1, :3].double(),
                                               torch.from_numpy(pose[None, :3]))
                assert angle.item() < 1e-3
            else:
                assert torch.isnan(poses.tensor[k]).all()
                assert (info['landmarks'][k] == -1).all()
    assert ds._read_image(ds.get_data_info(0)['lmdb_key']) == truth[1]['image'].read_bytes()


def test_filter_empty_gt(lmdb_path):
    path, truth = lmdb_path
    assert len(build(path, filter_cfg=dict(filter_empty_gt=True))) == len(truth) - 1
    assert len(build(path, filter_cfg=dict(filter_empty_gt=True), test_mode=True)) == len(truth)
    assert len(build(path, filter_cfg=dict(min_size=125))) == 2   # 144x176, 128x128


def test_pipeline_output(lmdb_path):
    path, _ = lmdb_path
    np.random.seed(0)
    ds = build(path, TRAIN_PIPELINE)
    for idx in range(len(ds)):
        out = ds[idx]
        gt = out['data_samples'].gt_instances
        h, w = out['data_samples'].img_shape
        assert out['inputs'].shape == (3, h, w) and out['inputs'].dtype == torch.uint8
        assert min(h, w) in (96, 112, 128) or max(h, w) == 200
        assert isinstance(gt.poses, FacePoses) and gt.poses.img_shape == (h, w)
        assert gt.poses.dtype == torch.float32 and gt.poses.shape == (len(gt), 6)
        assert gt.poses.valid.all() and (gt.poses.tensor[:, 5] > 0).all()
        assert gt.landmarks.shape[0] == len(gt) and gt.landmarks.shape[2] == 2
        assert (gt.labels == 0).all()
        boxes = gt.bboxes.tensor
        assert ((boxes[:, 2:] - boxes[:, :2]) >= 1).all()
        # faces without pose were blacked out and dropped; the only ignored faces are
        # the ones the random crop cut: visible, inside the image, with a real pose
        ignored = out['data_samples'].ignored_instances
        if len(ignored):
            cut = ignored.bboxes.tensor
            assert ((cut[:, 2:] - cut[:, :2]) >= 1).all()
            assert (cut[:, 0::2] <= w).all() and (cut[:, 1::2] <= h).all()
            assert ignored.poses.valid.all() and (ignored.poses.tensor[:, 5] > 0).all()


def test_faces_without_pose_as_ignored(lmdb_path):
    path, _ = lmdb_path
    ds = build(path, [dict(type='LoadFacePoseImage'), dict(type='LoadFacePoseAnnotations'),
                      dict(type='PackFacePoseInputs')])
    sample = ds[1]['data_samples']            # line 2: 3 faces, the second without pose
    assert len(sample.gt_instances) == 2
    assert len(sample.ignored_instances) == 1
    assert not sample.ignored_instances.poses.valid.any()


def test_dataloader_workers_persistent(lmdb_path):
    path, truth = lmdb_path
    ds = build(path, TRAIN_PIPELINE)
    ds[0]          # the main process opens its own environment first: workers must not share it
    loader = DataLoader(ds, batch_size=2, num_workers=2, persistent_workers=True,
                        collate_fn=pseudo_collate, shuffle=True)
    for _ in range(2):
        seen = []
        for batch in loader:
            seen += [s.img_id for s in batch['data_samples']]
            assert all(isinstance(x, torch.Tensor) for x in batch['inputs'])
        assert sorted(seen) == [f'{line:08d}' for line in sorted(truth)]
    del loader


def test_corrupt_image_bytes_name_the_record(lmdb_path, tmp_path):
    path, _ = lmdb_path
    broken = tmp_path / 'broken.lmdb'
    shutil.copytree(path, broken)
    env = lmdb.open(str(broken), map_size=1 << 26)
    with env.begin(write=True) as txn:
        header, arrays, _ = decode_record(txn.get(b'00000003'), '00000003')
        txn.put(b'00000003', encode_record(header, arrays, b'\x89PNG not really'))
    env.close()
    pipeline = [dict(type='LoadFacePoseImage'), dict(type='LoadFacePoseAnnotations'),
                dict(type='PackFacePoseInputs')]
    ds = build(broken, pipeline)
    with pytest.raises(ValueError, match=r"LMDB record '00000003'.*img3\.png"):
        ds[2]
    # ignore_empty: the sample is dropped and training draws another one
    ds = build(broken, [dict(type='LoadFacePoseImage', ignore_empty=True)] + pipeline[1:])
    assert ds.pipeline(dict(ds.get_data_info(2), img_bytes=b'junk')) is None
    assert ds[2]['data_samples'].img_id != '00000003'


def test_unfinished_or_bad_lmdb(lmdb_path, tmp_path):
    path, _ = lmdb_path
    partial = tmp_path / 'half.lmdb.partial'
    shutil.copytree(path, partial)
    with pytest.raises(FileNotFoundError, match='--resume'):
        build(tmp_path / 'half.lmdb')
    bad = tmp_path / 'bad.lmdb'
    shutil.copytree(path, bad)
    env = lmdb.open(str(bad), map_size=1 << 26)
    with env.begin(write=True) as txn:
        txn.put(b'00000004', b'not a record')
    env.close()
    with pytest.raises(ValueError, match="record '00000004'"):
        build(bad)


def test_json_folder_dataset_matches_lmdb(synthetic_set, lmdb_path, tmp_path):
    json_path, truth = synthetic_set
    path, _ = lmdb_path
    lmdb_ds = build(path)
    with open(json_path, 'a') as f:          # a bad line and a missing image are skipped
        f.write('not json\n')
        f.write(json.dumps(dict(image_path='images/nope.png', bboxes=[], landmarks=[])) + '\n')
    folder = DATASETS.build(dict(type='FacePoseJSONDataset', ann_file=str(json_path),
                                 labelling='image', keep_images_without_pose=True,
                                 pipeline=[dict(type='LoadImageFromFile'),
                                           dict(type='LoadFacePoseAnnotations'),
                                           dict(type='PoseRandomFlip', prob=1.0),
                                           dict(type='PackFacePoseInputs')]))
    assert len(folder) == len(lmdb_ds)
    for idx in range(len(folder)):
        a, b = folder.get_data_info(idx), lmdb_ds.get_data_info(idx)
        assert (a['height'], a['width'], a['img_path']) == (b['height'], b['width'],
                                                            b['img_path'])
        assert a['poses'].valid.tolist() == b['poses'].valid.tolist()
        torch.testing.assert_close(a['poses'].tensor, b['poses'].tensor, equal_nan=True)
        for ia, ib in zip(a['instances'], b['instances']):
            assert ia['ignore_flag'] == ib['ignore_flag']
    out = folder[0]
    assert out['data_samples'].flip and len(out['data_samples'].gt_instances) == 3
    # image paths relative to data_prefix (or data_root)
    folder2 = DATASETS.build(dict(type='FacePoseJSONDataset', ann_file=str(json_path),
                                  keep_images_without_pose=True,
                                  data_prefix=dict(img=str(json_path.parent)), pipeline=[]))
    assert len(folder2) == len(folder)
    with pytest.raises(FileNotFoundError, match='elsewhere'):
        DATASETS.build(dict(type='FacePoseJSONDataset', ann_file=json_path.name,
                            data_root=str(tmp_path / 'elsewhere'), pipeline=[]))
    shutil.copy(json_path, tmp_path / 'copy.json')
    folder4 = DATASETS.build(dict(type='FacePoseJSONDataset', ann_file=str(tmp_path / 'copy.json'),
                                  data_prefix=dict(img=str(tmp_path / 'elsewhere')),
                                  pipeline=[]))
    assert len(folder4) == 0          # every image missing: skipped, an empty dataset


def test_crop_keeps_cut_faces_as_ignored():
    """A face the crop cuts is not taught as background: it becomes an ignored instance."""
    from mmdet.registry import TRANSFORMS
    from mmdet.structures.bbox import HorizontalBoxes

    crop = TRANSFORMS.build(dict(type='PoseRandomCrop', scale_range=(0.5, 0.5)))
    drop = TRANSFORMS.build(dict(type='PoseRandomCrop', scale_range=(0.5, 0.5),
                                 cut_faces='drop'))
    boxes = np.array([[10, 10, 40, 40], [45, 10, 75, 40], [150, 150, 190, 190]], np.float32)

    def results():
        return dict(img=np.zeros((200, 200, 3), np.uint8), img_shape=(200, 200),
                    gt_bboxes=HorizontalBoxes(boxes.copy()),
                    gt_bboxes_labels=np.zeros(3, np.int64),
                    gt_ignore_flags=np.zeros(3, bool))

    # window x 0..100, y 0..100: face 0 inside, face 1 cut by nothing (inside too),
    # so use a window x 30..130 that cuts face 0 and keeps face 1
    crop._random_window = lambda h, w: (30, 0, 100, 100)
    drop._random_window = lambda h, w: (30, 0, 100, 100)
    out = crop.transform(results())
    assert out['gt_ignore_flags'].tolist() == [True, False]        # face 2 is not visible
    np.testing.assert_allclose(out['gt_bboxes'].tensor.numpy(), [[0, 10, 10, 40], [15, 10, 45, 40]])
    out = drop.transform(results())
    assert out['gt_ignore_flags'].tolist() == [False]
