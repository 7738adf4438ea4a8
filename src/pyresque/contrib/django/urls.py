"""``path("admin/resque/", include("pyresque.contrib.django.urls"))`` mounts the
dashboard there, for staff users."""

from django.urls import re_path

from pyresque.contrib.django.views import dashboard

app_name = "pyresque"
urlpatterns = [re_path(r"^(?P<path>.*)$", dashboard, name="dashboard")]
