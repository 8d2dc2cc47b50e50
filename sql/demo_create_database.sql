CREATE DATABASE loader_demo;
