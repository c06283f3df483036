"""onesearch-jax: OneSearch-V2 generative e-commerce search in JAX/Flax."""
import setuptools

setuptools.setup(
    name="onesearch-jax",
    version="0.1.0",
    description="JAX/Flax reimplementation of OneSearch-V2 generative e-commerce search",
    packages=setuptools.find_packages(include=["onesearch_jax", "onesearch_jax.*"]),
    package_data={"onesearch_jax": ["**/*.json", "**/*.txt"]},
    python_requires=">=3.10",
    install_requires=[
        "jax>=0.7,<0.13",
        "flax>=0.11,<0.13",
        "optax>=0.2.4,<0.3",
        "orbax-checkpoint>=0.11,<0.13",
        "tensorflow-datasets>=4.9.8,<5",
        "array-record>=0.7,<0.9",
        "einops>=0.8,<0.9",
        "absl-py>=2.1,<3",
        "chex>=0.1.89,<0.2",
        "ml-collections>=1.0,<2",
        "tokenizers>=0.20,<0.24",
        "numpy>=1.26,<3",
        "tensorboardX>=2.6,<3",
        "matplotlib>=3.8,<4",
        "safetensors>=0.4,<0.9",
        "scipy>=1.11,<2",
        # Workdir file access, local or gs:// (onesearch_jax/fileio.py).
        "etils[epath]>=1.7",
        # tfds resolves a builder's code path through etils, which imports this lazily.
        "importlib_resources>=6",
    ],
    extras_require={
        "test": ["pytest>=8,<10", "pytest-xdist>=3.5,<4"],
        # Cloud TPU VMs, and experiments/aot_compile.py (libtpu compiles for TPU topologies
        # without a TPU: run it with JAX_PLATFORMS=cpu there; make test keeps a private copy).
        "tpu": ["jax[tpu]>=0.7,<0.13", "gcsfs>=2024.2", "google-cloud-storage>=2.14"],
        # gs:// workdirs on any machine: epath reads/writes through gcsfs, orbax and
        # tensorboardX call the GCS client.
        "gcs": ["gcsfs>=2024.2", "google-cloud-storage>=2.14"],
        # Benchmarks only (never tests): the PyTorch decoding peer and the faiss reference.
        # torch==2.13.0 is the CPU wheel; other specs pull a multi-GB CUDA build.
        "bench": ["torch==2.13.0", "transformers>=4.45", "faiss-cpu>=1.8"],
    },
)
