"""tools/analysis_tools/browse_dataset.py on pipeline-shaped items (no dataset needed)."""
import importlib.util
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import HorizontalBoxes
from mmengine.config import Config
from mmengine.structures import InstanceData

from img2pose_mm.structures import load_reference_points, pose_to_bbox
from img2pose_mm.visualization import PoseLocalVisualizer

from .utils import make_pose

SCRIPT = Path(__file__).resolve().parents[2] / 'tools' / 'analysis_tools' / 'browse_dataset.py'
H, W = 120, 160


def load_script():
    spec = importlib.util.spec_from_file_location('browse_dataset_under_test', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def make_item(index):
    poses = make_pose((0., 30. * index, 0.), (0., 0., 7.))
    boxes = pose_to_bbox(poses, torch.as_tensor(load_reference_points()).double(), (H, W))
    sample = DetDataSample(metainfo=dict(img_path=f'/data/img_{index}.jpg', img_shape=(H, W)))
    sample.gt_instances = InstanceData(bboxes=HorizontalBoxes(boxes.float()),
                                       labels=torch.zeros(1).long(), poses=poses.float())
    bgr = torch.full((3, H, W), 100, dtype=torch.uint8)
    bgr[0] = 160   # blue channel first, as mmdet pipelines load images
    return dict(inputs=bgr, data_samples=sample)


def test_browse_writes_images_with_poses(tmp_path):
    browse_dataset = load_script()
    vis = PoseLocalVisualizer(name='test_browse_visualizer')
    vis.dataset_meta = dict(classes=('face',), palette=[(0, 255, 0)])
    count = browse_dataset.browse((make_item(i) for i in range(3)), vis, str(tmp_path),
                                  show=False, max_images=2, total=3)
    assert count == 2
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ['img_0.jpg', 'img_1.jpg']
    drawn = cv2.imread(str(tmp_path / 'img_0.jpg'))
    assert drawn.shape == (H, W, 3)
    # the background keeps its BGR colour, so the channel order went right
    np.testing.assert_allclose(drawn[3, 3], (160, 100, 100), atol=6)
    assert (np.abs(drawn.astype(int) - (160, 100, 100)).max(-1) > 30).sum() > 200


def test_config_visualizer_is_upgraded():
    browse_dataset = load_script()
    cfg = Config(dict(visualizer=dict(type='DetLocalVisualizer', name='test_browse_upgrade',
                                      line_width=1)))
    vis = browse_dataset.build_visualizer(cfg)
    assert isinstance(vis, PoseLocalVisualizer) and vis.line_width == 1
