"""Labelling faces: the original's box-camera rule, and bad boxes / landmarks refused with
their reason (converter, JSON dataset, training pipeline)."""
import numpy as np
import pytest
import torch
from mmdet.registry import DATASETS

from img2pose_mm.datasets.face_labelling import (
    BOX_PROBLEMS,
    POSE_STATUS,
    clean_annotated_boxes,
    label_faces,
)
from img2pose_mm.datasets.lmdb_converter import convert
from img2pose_mm.structures import (
    FaceModel,
    local_intrinsics,
    project_points,
    transform_points,
)

from .conftest import REF68, project, random_image, synthetic_poses, write_image, write_json_list

SHAPE = (200, 260)


def test_box_rule_truncates_clips_and_names_the_problem():
    boxes = np.array([[10.7, 20.2, 60.9, 80.5],       # fine: truncated
                      [60.0, 20.0, 10.0, 80.0],       # x swapped
                      [10.0, 10.0, 10.0, 50.0],       # zero width
                      [-20.5, 150.0, 30.0, 230.0],    # partly outside: clipped when stored
                      [300.0, 10.0, 320.0, 40.0]])    # outside the image
    label, stored, keep, reasons = clean_annotated_boxes(boxes, SHAPE)
    assert keep.tolist() == [True, False, False, True, False]
    assert [BOX_PROBLEMS[r] if r >= 0 else None for r in reasons] == [
        None, BOX_PROBLEMS[0], BOX_PROBLEMS[0], None, BOX_PROBLEMS[1]]
    # the original labels in the camera of the unclipped integer box ('int' truncates
    # towards zero); the stored box is the visible part
    np.testing.assert_array_equal(label[[0, 3]], [[10, 20, 60, 80], [-20, 150, 30, 230]])
    np.testing.assert_array_equal(stored[[0, 3]], [[10, 20, 60, 80], [0, 150, 30, 200]])
    floats, _, _, _ = clean_annotated_boxes(boxes, SHAPE, integer=False)
    np.testing.assert_allclose(floats[0], boxes[0])


def test_box_labelling_is_epnp_in_the_integer_box_camera(rng):
    """The original's rule: the box-local pose is what EPnP finds in the camera of the
    integer box, and the global pose is its decode; both are self-consistent."""
    poses = synthetic_poses(rng, SHAPE, 5, size_px=(40, 90))
    lm = project(poses, SHAPE)
    boxes = np.trunc(np.concatenate([lm.min(1) - 3.4, lm.max(1) + 2.6], 1))
    out = label_faces(lm, boxes, SHAPE, mode='box')
    assert out['poses'].valid.all() and (out['pose_status'] == 0).all()
    local = out['local_poses'].tensor
    # the local pose projects the reference points onto the landmarks shifted by the
    # box corner, in the box's own camera [[w+h, 0, w//2], [0, w+h, h//2]]
    box_t = torch.from_numpy(boxes)
    proj = project_points(transform_points(REF68, local), local_intrinsics(box_t))
    target = torch.from_numpy(lm) - box_t[:, None, :2]
    size = (target.amax(1) - target.amin(1)).amax(-1)
    assert ((proj - target).norm(dim=-1).mean(-1) / size).max() < 0.05
    torch.testing.assert_close(out['poses'].tensor,
                               FaceModel().decode(local, box_t, SHAPE))
    # 'image' labelling is exact on these exact projections; 'box' is within degrees
    exact = label_faces(lm, boxes, SHAPE, mode='image')
    torch.testing.assert_close(exact['poses'].tensor, poses, rtol=1e-3, atol=1e-3)


def test_bad_faces_get_no_pose_with_the_reason(rng):
    poses = synthetic_poses(rng, SHAPE, 5, size_px=(40, 90))
    lm = project(poses, SHAPE)
    boxes = FaceModel().pose_to_bbox(poses, SHAPE).numpy()
    lm[1, 3] = -1                      # the JSON list's "no pose"
    lm[2, 7] = np.nan                  # broken annotation
    lm[3] = lm[3] * 100                # landmarks far outside: a pose unrelated to the box
    out = label_faces(lm, boxes, SHAPE, mode='box')
    assert out['poses'].valid.tolist() == [True, False, False, False, True]
    assert [POSE_STATUS[c] for c in out['pose_status']] == [
        'ok', 'landmarks missing (-1)', 'landmarks not finite (NaN or inf)',
        'pose implausible for its box', 'ok']


@pytest.fixture
def bad_list(tmp_path):
    rng = np.random.default_rng(5)
    write_image(tmp_path / 'a.png', random_image(rng, SHAPE))
    write_image(tmp_path / 'b.png', random_image(rng, SHAPE))
    poses = synthetic_poses(rng, SHAPE, 6, size_px=(40, 70))
    lm = project(poses, SHAPE)
    boxes = FaceModel().pose_to_bbox(poses, SHAPE).numpy()
    bad = boxes.copy()
    bad[1] = bad[1][[2, 1, 0, 3]]          # x1 and x2 swapped
    bad[2] = [10, 10, 10, 10]              # zero area
    bad[3] = [400, 10, 450, 40]            # outside the image
    lm_bad = lm.copy()
    lm_bad[4] *= 100                       # far-off landmarks
    entries = [dict(image_path='a.png', bboxes=bad.tolist(), landmarks=lm_bad.tolist()),
               dict(image_path='b.png', bboxes=[bad[1].tolist()], landmarks=[lm[1].tolist()])]
    return write_json_list(tmp_path / 'bad.json', entries)


def test_converter_refuses_bad_faces_and_says_why(bad_list, tmp_path):
    messages = []
    summary = convert(bad_list, tmp_path / 'out', 'bad', train=True, progress=False,
                      log=messages.append)
    log = '\n'.join(messages)
    assert summary['dropped_faces'] == [(1, 1, BOX_PROBLEMS[0]), (1, 2, BOX_PROBLEMS[0]),
                                        (1, 3, BOX_PROBLEMS[1])]
    assert summary['faces_without_pose_records'] == [(1, 4)]       # the JSON's face index
    assert summary['without_pose_reasons'] == {'pose implausible for its box': 1}
    assert 'line 1 face 2: box swapped or empty' in log
    assert summary['images'] == 1 and summary['skipped'][0][0] == 2
    assert 'no face with a pose' in summary['skipped'][0][1]
    # nothing of it reaches training as a valid pose
    dataset = DATASETS.build(dict(
        type='FacePoseLMDBDataset', ann_file=summary['lmdb'], filter_cfg=dict(filter_empty_gt=True),
        pipeline=[dict(type='LoadFacePoseImage'), dict(type='LoadFacePoseAnnotations'),
                  dict(type='BlackOutFacesWithoutPose'), dict(type='PoseToBBox'),
                  dict(type='PackFacePoseInputs')]))
    sample = dataset[0]['data_samples']
    assert len(sample.gt_instances) == 2 and sample.gt_instances.poses.valid.all()
    boxes = sample.gt_instances.bboxes.tensor
    assert ((boxes[:, 2:] - boxes[:, :2]) > 1).all()
    # the JSON-folder dataset applies the same rules
    folder = DATASETS.build(dict(type='FacePoseJSONDataset', ann_file=str(bad_list),
                                 pipeline=[]))
    info = folder.get_data_info(0)
    assert len(folder) == 1 and len(info['instances']) == 3
    assert info['poses'].valid.tolist() == [True, False, True]
