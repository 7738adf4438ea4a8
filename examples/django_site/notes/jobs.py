"""The app's jobs: workers started by ``manage.py pyresque worker`` import this module."""

from __future__ import annotations

from pyresque import Job


class ReadNote(Job):
    """Read the note a request saved: enqueued on commit, it always finds it."""

    def perform(self, note_id: int) -> str:
        from notes.models import Note

        text: str = Note.objects.get(pk=note_id).text
        return text
