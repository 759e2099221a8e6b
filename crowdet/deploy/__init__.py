"""Deployment: the detector as one graph (network + decoding), exported to ONNX and run by
onnxruntime, with crowdet's post-processing (NMS) as the documented step after it.

    crowdet export --checkpoint best.pt --format onnx --out model.onnx [--dynamic]
    det = crowdet.Detector.from_checkpoint("model.onnx")   # onnxruntime as the engine

The exported graph (crowdet.deploy.graph.DeployGraph):
    inputs   images       (B, 3, H, W) float32 BGR pixel values 0-255 (uint8 images cast to
                          float), letterboxed and zero-padded right and below
             image_sizes  (B, 2) int64 (height, width) of each image inside the padding
    outputs  scores       (B, A, C) float32 detection probabilities
             boxes        (B, A, 4) float32 xyxy in network-input pixels, clipped to each image
NMS then runs outside the graph: `crowdet.postprocess.decode.postprocess_decoded(scores, boxes,
scales, ...)` with the checkpoint's `postprocess.*` settings, which the .onnx file carries in its
metadata (`crowdet.deploy.onnx_engine.OnnxModel` does all of it).
"""
