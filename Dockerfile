FROM python:3.11-slim
WORKDIR /app
COPY . .
RUN pip install --no-cache-dir -e .
ENV MAGNET_INSTANCE_PATH=/app/instance
EXPOSE 8000
