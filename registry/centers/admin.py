from django.contrib import admin

from .models import Center, LabRange, Membership


class LabRangeInline(admin.TabularInline):
    model = LabRange
    extra = 0


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0


@admin.register(Center)
class CenterAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "country")
    search_fields = ("code", "name")
    inlines = [LabRangeInline, MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "center", "role")
    list_filter = ("role", "center")
    search_fields = ("user__username", "center__code")
