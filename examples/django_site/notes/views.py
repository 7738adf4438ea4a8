from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from notes.jobs import ReadNote
from notes.models import Note
from pyresque.contrib.django import enqueue_to_on_commit


def _add_note(request: HttpRequest) -> JsonResponse:
    with transaction.atomic():
        note = Note.objects.create(text=request.POST["text"])
        # Written to Redis only when the transaction commits: the job sees the note.
        enqueue_to_on_commit("notes", ReadNote, note.pk, track_status=True)
    return JsonResponse({"note": note.pk})


add_note = csrf_exempt(require_POST(_add_note))  # an API endpoint in this example
