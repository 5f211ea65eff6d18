from django.apps import AppConfig


class SessionsAppConfig(AppConfig):
    name = "sessions_app"
    verbose_name = "Sessions"

    def ready(self) -> None:
        from django.contrib import admin

        from sessions_app.console import admin_site_brand

        admin_site_brand(site=admin.site)
