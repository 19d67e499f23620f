from sqlalchemy import update

from db.models import Clip, ClipFlag, ClipTag, Resolution, utcnow
from labeling.data.clips import clip_frame, data_fingerprint
from labeling.data.importer import import_path
from labeling.data.projects import get_project
from tests.audio import speechlike, write_wav


def test_the_data_fingerprint_moves_exactly_when_the_clip_frame_would(workspace, tmp_path):
    src = tmp_path / "src"
    for i in range(3):
        write_wav(src / f"{i}.wav", speechlike(200 + i))
    import_path(workspace, src, "fp")
    with workspace.db.read() as s:
        project = get_project(s, "fp")
        before = data_fingerprint(s, project.id)
        frame = clip_frame(s, project.id)
        assert data_fingerprint(s, project.id) == before  # reading changes nothing
    first = int(frame["clip_id"].iloc[0])

    changes = [
        lambda s: s.add(ClipTag(clip_id=first, tag="noise:car", source="analysis")),
        lambda s: s.add(Resolution(clip_id=first, project_id=project.id, label="yes", method="adjudicated")),
        lambda s: s.execute(update(Clip).where(Clip.id == first).values(priority=5)),
        lambda s: s.execute(update(Clip).where(Clip.id == first).values(deleted_at=utcnow())),
        lambda s: s.add(ClipFlag(clip_id=first, kind="label_issue")),
    ]
    seen = {before}
    for change in changes:
        with workspace.db.write() as s:
            change(s)
        with workspace.db.read() as s:
            now = data_fingerprint(s, project.id)
        assert now not in seen
        seen.add(now)
