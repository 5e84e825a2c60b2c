from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.utils.translation import gettext_lazy as _

from registry.centers.admin import MembershipInline

from .models import User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    fieldsets = BaseUserAdmin.fieldsets + ((_("Study role"), {"fields": ("is_coordinator",)}),)
    list_display = ("username", "email", "is_coordinator", "is_staff", "is_active")
    list_filter = ("is_coordinator", "is_staff", "is_active")
    inlines = [MembershipInline]
