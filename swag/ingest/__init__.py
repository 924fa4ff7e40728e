"""Real-world inputs: web video, the public SMB dataset, FCEUX `.fm2` movies.

- `video`: any FFmpeg-readable video -> an unlabelled store (borders removed, NES aspect).
- `webvideo`: one of our recordings -> a realistic web upload (upscaled, letterboxed, H.264).
- `smbdataset`: github.com/rafaelcp/smbdataset episodes -> raw recordings.
- `fm2`: FCEUX movies replayed in nes-py from power-on -> raw recordings.
"""
