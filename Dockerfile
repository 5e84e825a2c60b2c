# The registry's production image: gunicorn serves the app and its static files (WhiteNoise);
# the same image runs the Celery worker and beat (see docker-compose.yml).
FROM node:20-bookworm-slim AS static
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
COPY --from=static /src/node_modules ./node_modules
RUN DJANGO_SECRET_KEY=build python manage.py collectstatic --noinput -v0 \
    && useradd --system --home /app registry && mkdir -p /app/var && chown registry /app/var
USER registry
EXPOSE 8000
CMD ["gunicorn", "--config", "gunicorn.conf.py", "registry.wsgi:application"]
