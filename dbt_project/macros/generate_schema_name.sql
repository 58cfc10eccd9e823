{#- Models land in exactly the schema they name (`silver`, `gold`), never `<target>_silver`:
    other parts (ML, Superset, the export) address these schemas by their fixed names. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema | trim }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
