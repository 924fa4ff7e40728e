"""The exceptions the CLI turns into one line on stderr and a non-zero exit."""


class SwagError(Exception):
    """Bad input: the message names the file (or key) and the problem, on one line."""


# 128 + SIGTERM: a non-zero status, so SLURM and Snakemake retry the job, which then resumes.
EXIT_INTERRUPTED = 143


class TrainingInterrupted(Exception):
    """SIGTERM arrived and the checkpoint (or labels progress) is written; the CLI exits with EXIT_INTERRUPTED."""
