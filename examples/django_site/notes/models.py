from django.db import models


class Note(models.Model):  # type: ignore[misc]  # Django ships no type hints
    text = models.CharField(max_length=200)
