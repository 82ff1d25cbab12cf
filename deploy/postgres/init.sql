-- Each service owns its own database (and so its own outbox and inbox tables).
CREATE DATABASE tongban_intake;
CREATE DATABASE tongban_approval;
CREATE DATABASE tongban_dispatch;
CREATE DATABASE tongban_notification;
