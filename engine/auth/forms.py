"""The sign-in pages' forms (Flask-WTF: each carries the session's CSRF token)."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, StringField
from wtforms.validators import Email, EqualTo, InputRequired, Length

from engine.auth.passwords import MIN_LENGTH


class SignInForm(FlaskForm):
    email = EmailField("Email", validators=[InputRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[InputRequired(), Length(max=1000)])
    remember = BooleanField("Keep me signed in on this device for 14 days")


class ResetRequestForm(FlaskForm):
    email = EmailField("Email", validators=[InputRequired(), Email(), Length(max=254)])


class NewPasswordForm(FlaskForm):
    password = PasswordField("New password", validators=[
        InputRequired(), Length(min=MIN_LENGTH, max=1000)])
    confirm = PasswordField("Repeat the password", validators=[
        InputRequired(), EqualTo("password", message="The two passwords differ.")])


class AcceptInvitationForm(NewPasswordForm):
    name = StringField("Your name", validators=[Length(max=200)])


class WelcomeForm(AcceptInvitationForm):
    email = EmailField("Your email", validators=[InputRequired(), Email(), Length(max=254)])
