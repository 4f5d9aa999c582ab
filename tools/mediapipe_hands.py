"""Run MediaPipe Hands 0.10.21 on images and write its detections as JSON.

Runs in its own virtual environment (MediaPipe wants numpy < 2, h2t uses numpy 2), e.g.
``make realism-env`` (creates ``.venv-mp``). ``python -m h2t_lib realism`` starts this script
as a subprocess; it reads nothing of h2t::

    .venv-mp/bin/python tools/mediapipe_hands.py LIST.json OUT.json

LIST.json: a list of image paths. OUT.json: {"mediapipe": version, "settings": {...},
"images": {path: [{"landmarks": [[x_px, y_px] * 21], "label": "Left"|"Right", "score": s}, ...]}}.
Settings: the legacy ``mediapipe.solutions.hands`` API with its defaults (static images,
max 2 hands, model complexity 1, detection 0.5, tracking 0.5). Landmarks are in MediaPipe's
order (0 wrist, then thumb CMC MCP IP TIP, index MCP PIP DIP TIP, ... pinky) in pixels of the
image as given; ``label`` is MediaPipe's handedness as it reports it (it assumes a mirrored,
selfie-view image).
"""
import json
import sys

SETTINGS = dict(static_image_mode=True, max_num_hands=2, model_complexity=1,
                min_detection_confidence=0.5, min_tracking_confidence=0.5)


def main(argv):
    if len(argv) != 2:
        print("usage: mediapipe_hands.py LIST.json OUT.json", file=sys.stderr)
        return 2
    import cv2
    import mediapipe as mp

    with open(argv[0]) as f:
        paths = json.load(f)
    out = {"mediapipe": mp.__version__, "settings": SETTINGS, "images": {}}
    with mp.solutions.hands.Hands(**SETTINGS) as hands:
        for path in paths:
            bgr = cv2.imread(path, cv2.IMREAD_COLOR)
            if bgr is None:
                print(f"mediapipe_hands: cannot read image {path}", file=sys.stderr)
                return 2
            h, w = bgr.shape[:2]
            res = hands.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            found = []
            for lms, hd in zip(res.multi_hand_landmarks or [], res.multi_handedness or []):
                c = hd.classification[0]
                found.append({"landmarks": [[p.x * w, p.y * h] for p in lms.landmark],
                              "label": c.label, "score": float(c.score)})
            out["images"][path] = found
    with open(argv[1], "w") as f:
        json.dump(out, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
