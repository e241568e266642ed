"""One pose from an LMDB record to the packed sample: it stays a FacePoses all the way."""
import numpy as np
import torch
from mmdet.registry import DATASETS, TRANSFORMS

from img2pose_mm.datasets.lmdb_converter import convert
from img2pose_mm.structures import FaceModel, FacePoses

from .conftest import REF68


class Spy:
    """Wraps a transform and records the type of ``gt_poses`` it hands on."""

    def __init__(self, transform, seen):
        self.transform, self.seen = transform, seen

    def __call__(self, results):
        results = self.transform(results)
        if results is not None and 'gt_poses' in results:
            self.seen.append((type(self.transform).__name__, results['gt_poses']))
        return results


def build_dataset(tmp_path, json_path, pipeline, test_mode):
    convert(str(json_path), str(tmp_path / 'db'), 'walk', progress=False, log=lambda m: None,
            labelling='image')
    return DATASETS.build(dict(type='FacePoseLMDBDataset', data_root=str(tmp_path / 'db'),
                               ann_file='walk.lmdb', test_mode=test_mode, pipeline=pipeline))


def spied(dataset):
    seen = []
    dataset.pipeline.transforms = [Spy(t, seen) for t in dataset.pipeline.transforms]
    return seen


def test_training_walk(tmp_path, synthetic_set):
    json_path, truth = synthetic_set
    pipeline = [dict(type='LoadFacePoseImage'), dict(type='LoadFacePoseAnnotations'),
                dict(type='PoseRandomFlip', prob=1.0), dict(type='PoseRandomFlip', prob=1.0),
                dict(type='PoseRandomCrop', scale_range=(0.8, 0.8)),
                dict(type='PoseResize', scale_factor=2.0), dict(type='PoseToBBox'),
                dict(type='PackFacePoseInputs', meta_keys=('img_shape', 'homography_matrix'))]
    dataset = build_dataset(tmp_path, json_path, pipeline, test_mode=False)
    idx = [i for i in range(len(dataset)) if dataset.get_data_info(i)['lmdb_key'] == '00000002'][0]
    line = truth[2]                      # 3 faces, the second marked "no pose"
    seen = spied(dataset)
    np.random.seed(0)
    packed = dataset[idx]
    # a FacePoses from loading to packing, no numpy in between
    assert [name for name, _ in seen] == [
        'LoadFacePoseAnnotations', 'PoseRandomFlip', 'PoseRandomFlip', 'PoseRandomCrop',
        'PoseResize', 'PoseToBBox']
    assert all(isinstance(poses, FacePoses) for _, poses in seen)
    sample = packed['data_samples']
    gt, ignored = sample.gt_instances, sample.ignored_instances
    assert isinstance(gt.poses, FacePoses) and isinstance(ignored.poses, FacePoses)
    # the face without a pose is carried by the mask (ignored), not by a sentinel value
    loaded = seen[0][1]
    assert loaded.valid.tolist() == line['valid'].tolist()
    assert gt.poses.valid.all() and int((~ignored.poses.valid).sum()) <= 1
    # flip twice = identity
    flipped_twice = seen[2][1]
    torch.testing.assert_close(flipped_twice.tensor[loaded.valid], loaded.tensor[loaded.valid],
                               rtol=0, atol=1e-5)
    # the packed poses describe the network input, and projecting the reference face with
    # them lands where the original landmarks moved (crop then x2 resize)
    assert gt.poses.img_shape == tuple(sample.metainfo['img_shape'][:2])
    homography = torch.from_numpy(np.asarray(sample.metainfo['homography_matrix'], np.float64))
    moved = torch.from_numpy(line['landmarks'][line['valid']])
    moved = moved @ homography[:2, :2].T + homography[:2, 2]
    # which input face each kept face is: its packed landmarks are the moved ones
    dist = (gt.landmarks.double()[:, None] - moved[None]).abs().amax((-1, -2))
    assert (dist.min(1).values < 1e-2).all()
    target = moved[dist.argmin(1)]
    proj = gt.poses.project(FaceModel()).double()
    size = (target.amax(1) - target.amin(1)).amax(-1)
    err = (proj - target).norm(dim=-1).mean(-1) / size
    assert err.max() < 0.01, err
    # boxes were rebuilt from the poses
    torch.testing.assert_close(gt.bboxes.tensor, gt.poses.to_bboxes(FaceModel()))


def test_test_walk(tmp_path, synthetic_set):
    json_path, truth = synthetic_set
    pipeline = [dict(type='LoadFacePoseImage'), dict(type='PoseResize', scale_factor=0.5),
                dict(type='LoadFacePoseAnnotations'), dict(type='PackFacePoseInputs')]
    dataset = build_dataset(tmp_path, json_path, pipeline, test_mode=True)
    idx = [i for i in range(len(dataset)) if dataset.get_data_info(i)['lmdb_key'] == '00000002'][0]
    line = truth[2]
    seen = spied(dataset)
    sample = dataset[idx]['data_samples']
    assert [name for name, _ in seen] == ['LoadFacePoseAnnotations']
    poses = sample.gt_instances.poses
    # test-time GT stays in the original image's frame, like mmdet's boxes
    assert isinstance(poses, FacePoses) and poses.img_shape == tuple(line['shape'])
    torch.testing.assert_close(poses.tensor.double(),
                               torch.from_numpy(line['poses'][line['valid']]), rtol=1e-5,
                               atol=1e-4)
    proj = poses.project(FaceModel(reference_points=REF68.float()))
    torch.testing.assert_close(proj.double(),
                               torch.from_numpy(line['landmarks'][line['valid']]), rtol=0,
                               atol=1e-2)
    assert len(sample.ignored_instances.poses) == 1
    assert not sample.ignored_instances.poses.valid.any()
    # LoadFacePoseAnnotations builds it once: every transform sees the same object type
    assert TRANSFORMS.get('LoadFacePoseAnnotations') is not None
