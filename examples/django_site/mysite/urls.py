from django.contrib import admin
from django.urls import include, path
from notes.views import add_note

urlpatterns = [
    path("admin/resque/", include("pyresque.contrib.django.urls")),  # staff only
    path("admin/", admin.site.urls),
    path("notes/", add_note),
]
