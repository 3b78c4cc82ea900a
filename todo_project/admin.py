"""The admin's front page links the operators' overview (``todo_project.admin_overview``)."""

from django.contrib import admin

admin.site.index_template = "admin/index_with_overview.html"
