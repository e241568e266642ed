"""tools/face_alignment.py and the image/video demos on generated images."""
import importlib.util
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from .conftest import CONFIG, REPO, env_one_thread, synthetic_images

FAST_OPTIONS = ['--cfg-options', 'model.test_cfg.rpn.nms_pre=300',
                'model.test_cfg.rpn.max_per_img=60']


def load_script(relpath):
    spec = importlib.util.spec_from_file_location(relpath.replace('/', '_')[:-3], REPO / relpath)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def images():
    return [img for img, _ in synthetic_images(2, seed=5)]


@pytest.fixture(scope='module')
def model_args(tiny_checkpoint):
    return ['--config', str(CONFIG), '--checkpoint', str(tiny_checkpoint[0]), '--device', 'cpu',
            '--min-size', '128', '--max-size', '256'] + FAST_OPTIONS


def test_face_alignment_cli(tmp_path, images, model_args, capsys):
    tool = load_script('tools/face_alignment.py')
    src = tmp_path / 'in'
    (src / 'a').mkdir(parents=True)
    (src / 'b' / 'c').mkdir(parents=True)
    (src / '.cache').mkdir()
    Image.fromarray(images[0]).save(src / 'a' / 'img0.jpg', quality=95)
    Image.fromarray(images[1]).save(src / 'b' / 'c' / 'img1.png')
    Image.fromarray(images[1]).save(src / '.cache' / 'skip.png')
    (src / 'broken.jpg').write_bytes(b'\xff\xd8\xff\xe0 truncated')
    out = tmp_path / 'out'
    argv = [str(src), str(out), '--det-threshold', '0.05', '--max-faces', '2',
            '--order', 'confidence', '--face-size', '64', '--no-progress'] + model_args
    assert tool.main(argv) == 0
    captured = capsys.readouterr()
    assert 'broken.jpg' in captured.err
    assert 'images: 3' in captured.out and 'failures: 1' in captured.out
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob('*') if p.is_file())
    assert written == ['a/img0_0.jpg', 'a/img0_1.jpg', 'b/c/img1_0.png', 'b/c/img1_1.png']
    assert all(Image.open(out / w).size == (64, 64) for w in written)
    assert not list(out.rglob('.*tmp*'))
    # one face per image keeps the image's own name; a list file with a missing entry
    listing = tmp_path / 'list.txt'
    listing.write_text('# images\nin/a/img0.jpg\n\nin/b/c/img1.png\nin/gone.png\n')
    out1 = tmp_path / 'out1'
    assert tool.main([str(listing), str(out1), '--det-threshold', '0.05', '--face-size', '48',
                      '--ext', 'png', '--no-progress'] + model_args) == 0
    captured = capsys.readouterr()
    assert 'gone.png' in captured.err and 'failures: 1' in captured.out
    written = sorted(p.relative_to(out1).as_posix() for p in out1.rglob('*') if p.is_file())
    assert written == ['a/img0.png', 'b/c/img1.png']
    # nothing to read: an error, no output
    assert tool.main([str(tmp_path / 'nothing'), str(tmp_path / 'o2')] + model_args) == 2


def test_face_order():
    tool = load_script('tools/face_alignment.py')
    faces = [{'box': [0, 0, 10, 10], 'confidence': 0.9},
             {'box': [45, 45, 55, 55], 'confidence': 0.6},
             {'box': [80, 10, 95, 30], 'confidence': 0.8}]
    assert tool.order_faces(faces, (100, 100), 'position', 1) == [faces[1]]
    assert tool.order_faces(faces, (100, 100), 'confidence', -1) == [faces[0], faces[2], faces[1]]


def test_face_alignment_script_subprocess(tmp_path, images, model_args):
    image = tmp_path / 'single.jpg'
    Image.fromarray(images[0]).save(image)
    out = tmp_path / 'aligned'
    proc = subprocess.run([sys.executable, str(REPO / 'tools' / 'face_alignment.py'), str(image),
                           str(out), '--det-threshold', '0.05'] + model_args,
                          capture_output=True, text=True, env=env_one_thread(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'images: 1' in proc.stdout and 'failures: 0' in proc.stdout
    assert Image.open(out / 'single.jpg').size == (224, 224)


def test_image_demo(tmp_path, images, model_args):
    demo = load_script('demo/image_demo.py')
    paths = []
    for i, img in enumerate(images):
        paths.append(tmp_path / f'photo{i}.png')
        Image.fromarray(img).save(paths[-1])
    result = tmp_path / 'result.jpg'
    assert demo.main([str(paths[0]), '--out', str(result), '--json', '--score-thr', '0.05']
                     + model_args) == 0
    drawn = np.asarray(Image.open(result))
    assert drawn.shape == images[0].shape
    faces = json.loads(result.with_suffix('.json').read_text())
    assert faces and set(faces[0]) == {'box', 'confidence', 'pose', 'euler', 'keypoints'}
    assert np.abs(drawn.astype(int) - images[0]).mean() > 1       # something was drawn
    out_dir = tmp_path / 'results'
    assert demo.main([str(tmp_path / 'photo0.png'), str(tmp_path / 'photo1.png'), '--out',
                      str(out_dir), '--no-mesh', '--score-thr', '0.05'] + model_args) == 0
    assert sorted(p.name for p in out_dir.iterdir()) == ['photo0_img2pose.png',
                                                          'photo1_img2pose.png']


def test_video_demo(tmp_path, images, model_args):
    demo = load_script('demo/video_demo.py')
    video = tmp_path / 'clip.avi'
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*'MJPG'), 10,
                             images[0].shape[1::-1])
    for img in (images[0], images[1], images[0]):
        writer.write(np.ascontiguousarray(img[..., ::-1]))
    writer.release()
    out = tmp_path / 'out' / 'clip_pose.avi'
    assert demo.main([str(video), '--out', str(out), '--score-thr', '0.05'] + model_args) == 0
    capture = cv2.VideoCapture(str(out))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    assert len(frames) == 3 and frames[0].shape == images[0].shape
    assert not list(out.parent.glob('.tmp*'))
    assert demo.main([str(tmp_path / 'missing.mp4'), '--out', str(out)] + model_args) == 2
    assert demo.video_source('0') == 0


def test_image_demo_given_boxes(tmp_path, images, model_args, capsys):
    """``--boxes``: one face per given box, in order, for a list (one image) or a mapping
    of image names; images without boxes are skipped; bad boxes are reported."""
    demo = load_script('demo/image_demo.py')
    paths = []
    for i, img in enumerate(images):
        paths.append(tmp_path / f'photo{i}.png')
        Image.fromarray(img).save(paths[-1])
    boxes = [[10, 12, 60, 70], [70, 40, 120, 100, 0.9], [10, 12, 60, 70]]
    listing = tmp_path / 'boxes.json'
    listing.write_text(json.dumps(boxes))
    result = tmp_path / 'given.png'
    assert demo.main([str(paths[0]), '--boxes', str(listing), '--out', str(result), '--json',
                      '--landmarks', '--camera', '300'] + model_args) == 0
    faces = json.loads(result.with_suffix('.json').read_text())
    assert len(faces) == 3 and faces[0] == faces[2]
    assert all(len(f['landmarks']) == 68 and set(f['euler']) == {'yaw', 'pitch', 'roll'}
               for f in faces)
    assert 'yaw' in capsys.readouterr().out
    # a mapping by file name; photo1 has no entry and is skipped
    mapping = tmp_path / 'by_name.json'
    mapping.write_text(json.dumps({'photo0.png': [{'box': boxes[1][:4]}]}))
    out_dir = tmp_path / 'given_dir'
    assert demo.main([str(paths[0]), str(paths[1]), '--boxes', str(mapping), '--out',
                      str(out_dir), '--json'] + model_args) == 0
    assert 'no boxes for it' in capsys.readouterr().err
    assert len(json.loads((out_dir / 'photo0_img2pose.json').read_text())) == 1
    assert not (out_dir / 'photo1_img2pose.png').exists()
    listing.write_text(json.dumps([[30, 30, 20, 50]]))
    assert demo.main([str(paths[0]), '--boxes', str(listing)] + model_args) == 1
    assert 'degenerate' in capsys.readouterr().err
    assert demo.main([str(paths[0]), str(paths[1]), '--boxes', str(listing)] + model_args) == 2


def test_face_alignment_landmarks(tmp_path, images, model_args):
    """``--draw-landmarks`` draws the 68 points on the crops; ``--json`` writes the face
    and its points in crop pixels next to each crop."""
    tool = load_script('tools/face_alignment.py')
    image = tmp_path / 'face.png'
    Image.fromarray(images[0]).save(image)
    common = [str(image), '--det-threshold', '0.05', '--face-size', '96', '--no-progress']
    plain, marked = tmp_path / 'plain', tmp_path / 'marked'
    assert tool.main([common[0], str(plain)] + common[1:] + model_args) == 0
    assert tool.main([common[0], str(marked)] + common[1:] + ['--draw-landmarks', '--json']
                     + model_args) == 0
    record = json.loads((marked / 'face.json').read_text())
    crop_points = np.array(record['landmarks_crop'])
    matrix = np.array(record['alignment_matrix'])
    assert crop_points.shape == (68, 2) and len(record['face']['landmarks']) == 68
    np.testing.assert_allclose(crop_points, np.array(record['face']['landmarks']) @ matrix[:, :2].T
                               + matrix[:, 2], atol=1e-9)
    drawn = np.asarray(Image.open(marked / 'face.png')).astype(int)
    base = np.asarray(Image.open(plain / 'face.png')).astype(int)
    assert (np.abs(drawn - base).sum(-1) > 0).sum() > 20
    assert not (plain / 'face.json').exists()
